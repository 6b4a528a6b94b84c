//! Real broker processes, started from the Debian packages' own files.
//!
//! A [`BrokerProcess`] starts one server with a fresh data directory under the system's
//! temporary directory and ports on 127.0.0.1 that it picked free, and waits until the server
//! answers a protocol handshake (AMQP's protocol header is answered by `connection.start`,
//! STOMP's `CONNECT` by `CONNECTED`). Faults act on the real process group:
//!
//! - `crash`: `SIGKILL` to every process of the server, then, when asked, a restart on the same
//!   data directory and ports (the kernel closes the connections, as the model's crash does);
//! - `pause`: `SIGSTOP`, later `SIGCONT` (the server resumes with its old view);
//! - `partition`, `loss`: a server started with [`BrokerProcess::start_isolated`] runs in a
//!   network namespace of its own, and a hole opens in its link ([`crate::network`]);
//! - `power`: not offered. A machine crash drops what was written but not fsynced; a killed
//!   process on a live kernel keeps its page cache, so nothing here can imitate it honestly.
//!
//! ActiveMQ's shared-store master/slave ([`BrokerProcess::start_master_slave`]) is two brokers
//! whose `<kahaDB directory>` is one directory, locked by `SharedFileLocker`: a broker that finds
//! the lock held logs that it "is now in slave mode" and opens no connector, so it is ready once
//! it said so, and is the master once it answers the handshake.
//!
//! Dropping a `BrokerProcess` kills everything it started and removes its directory.

use crate::network::{Bridge, Netns};
use crate::plan::Act;
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The package's server script, and the Erlang port mapper it needs.
pub const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
pub const EPMD: &str = "/usr/bin/epmd";
pub const RABBITMQCTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
/// The package's launcher jar.
pub const ACTIVEMQ_JAR: &str = "/usr/share/activemq/bin/activemq.jar";
pub const ACTIVEMQ_HOME: &str = "/usr/share/activemq";
pub const JAVA: &str = "/usr/bin/java";

/// How long a server may take to answer its handshake: RabbitMQ needs about 5 s from cold and
/// 8–10 s after a `kill -9` on a loaded machine.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Something the harness could not do: a missing package, a server that never became ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HarnessError(pub String);

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

impl HarnessError {
    pub fn new(message: impl Into<String>) -> Self {
        HarnessError(message.into())
    }
}

/// Which real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    RabbitMq,
    ActiveMq,
}

impl Server {
    /// The files the server needs, each with the Debian package that installs it.
    pub fn requirements(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Server::RabbitMq => &[(RABBITMQ_SERVER, "rabbitmq-server"), (EPMD, "erlang-base")],
            Server::ActiveMq => &[(ACTIVEMQ_JAR, "activemq"), (JAVA, "default-jre-headless")],
        }
    }

    /// Fails, naming the package to install, when a file the server needs is missing.
    pub fn check_installed(self) -> Result<(), HarnessError> {
        check_files(self.requirements())
    }
}

/// `Ok` when every file exists; otherwise the first missing one and the package to install.
pub fn check_files(files: &[(&str, &str)]) -> Result<(), HarnessError> {
    for (file, package) in files {
        if !Path::new(file).exists() {
            return Err(HarnessError::new(format!(
                "{file} is missing: install the Debian package {package} \
                 (apt-get install -y --no-install-recommends {package})"
            )));
        }
    }
    Ok(())
}

/// A free TCP port on 127.0.0.1 (the kernel picks it; it is free again when this returns).
pub fn free_port() -> Result<u16, HarnessError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| HarnessError::new(format!("no free port on 127.0.0.1: {e}")))
}

/// Runs a command to its end; the error names it and quotes what it said on stderr.
pub(crate) fn run(command: &mut Command) -> Result<(), HarnessError> {
    let shown = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::new(format!("cannot run {shown}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(HarnessError::new(format!(
        "{shown} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// A fresh, empty directory for one server's data and logs.
fn fresh_dir(what: &str) -> Result<PathBuf, HarnessError> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mqcheck-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)
        .map_err(|e| HarnessError::new(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

fn signal_group(child: &Child, signal: libc::c_int) {
    // The child leads its own process group (`process_group(0)`), so this reaches the script,
    // the VM it started and their helpers. Its pid fits a pid_t: the kernel gave it.
    let pgid = child.id() as libc::pid_t;
    // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// What ActiveMQ's `SharedFileLocker` logs when another broker holds the KahaDB lock
/// (`SharedFileLocker.doStart`, 5.17.2).
const SLAVE_MODE: &str = "This broker is now in slave mode";
/// What ActiveMQ logs once it opened its STOMP connector (`TransportConnector.start`).
const CONNECTOR_STARTED: &str = "Connector stomp started";

/// A KahaDB that a master and a slave share (`failover=true`), and its locker's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedKahaDb {
    /// `lockAcquireSleepInterval` (`AbstractLocker`): how long a slave sleeps between two
    /// attempts at the lock, in ms.
    pub lock_acquire_sleep_interval: u64,
    /// `lockKeepAlivePeriod` (`LockableServiceSupport`): how long a slave that waited sleeps after
    /// taking the lock, in ms.
    pub lock_keep_alive_period: u64,
}

/// One running (or crashed) broker server.
pub struct BrokerProcess {
    server: Server,
    dir: PathBuf,
    /// The client port: AMQP for RabbitMQ, STOMP for ActiveMQ.
    pub port: u16,
    epmd_port: u16,
    dist_port: u16,
    epmd: Option<Child>,
    child: Option<Child>,
    paused: bool,
    /// The broker's own network, when the run cuts it; else it listens on 127.0.0.1.
    net: Option<Netns>,
    /// Times the server was started, the first start included.
    pub starts: u32,
    /// ActiveMQ's KahaDB directory: its own, or the one its master/slave pair shares.
    kahadb: PathBuf,
    /// The pair's locker settings, when the KahaDB is shared.
    shared: Option<SharedKahaDb>,
    /// Where the server's log stood when it was last started.
    log_mark: usize,
    /// The bridge a cluster node's namespace hangs on, kept while a node needs it.
    bridge: Option<Arc<Bridge>>,
}

impl BrokerProcess {
    /// Starts a server on a fresh data directory and waits until it is ready.
    pub fn start(server: Server) -> Result<Self, HarnessError> {
        let mut process = BrokerProcess::new(server, None, None)?;
        process.restart()?;
        Ok(process)
    }

    /// Starts a server, as [`Self::start`], in a network namespace of its own, so that a plan's
    /// partitions and losses can cut its link ([`Netns`]).
    pub fn start_isolated(server: Server) -> Result<Self, HarnessError> {
        let mut process = BrokerProcess::new(server, None, Some(Netns::create()?))?;
        process.restart()?;
        Ok(process)
    }

    /// Starts a RabbitMQ cluster of `nodes` nodes: one `epmd` and one Erlang cookie for all,
    /// each node started on its own and then joined to the first (`rabbitmqctl stop_app`,
    /// `join_cluster`, `start_app`), so the cluster forms the same way every time instead of
    /// racing peer discovery. A single node is [`Self::start`].
    pub fn start_cluster(server: Server, nodes: usize) -> Result<Vec<Self>, HarnessError> {
        if nodes > 1 && server != Server::RabbitMq {
            return Err(HarnessError::new(format!(
                "{server:?} has no cluster of {nodes} nodes here"
            )));
        }
        let mut cluster = vec![BrokerProcess::start(server)?];
        for _ in 1..nodes {
            let mut node = BrokerProcess::new(server, Some(cluster[0].epmd_port), None)?;
            node.restart()?;
            let seed = cluster[0].node_name();
            for args in [&["stop_app"][..], &["join_cluster", &seed], &["start_app"]] {
                node.rabbitmqctl(args)?;
            }
            node.wait_ready(READY_TIMEOUT)?;
            cluster.push(node);
        }
        Ok(cluster)
    }

    /// Starts a RabbitMQ cluster, as [`Self::start_cluster`], with each node in a namespace of
    /// its own on one bridge ([`Bridge`]), so that a plan's partition can cut one node from the
    /// others and from the clients. Each node runs its own `epmd` (on one port number, as
    /// distribution needs) and has the long name `mqcheck@<its address>`.
    pub fn start_cluster_isolated(server: Server, nodes: usize) -> Result<Vec<Self>, HarnessError> {
        if server != Server::RabbitMq {
            return Err(HarnessError::new(format!(
                "{server:?} has no cluster of {nodes} nodes here"
            )));
        }
        let bridge = Arc::new(Bridge::create()?);
        let mut cluster: Vec<Self> = Vec::new();
        for _ in 0..nodes {
            let epmd_port = cluster.first().map(|n| n.epmd_port);
            let mut node = BrokerProcess::new(server, epmd_port, Some(Netns::on_bridge(&bridge)?))?;
            node.bridge = Some(bridge.clone());
            node.restart()?;
            if let Some(seed) = cluster.first().map(BrokerProcess::node_name) {
                for args in [&["stop_app"][..], &["join_cluster", &seed], &["start_app"]] {
                    node.rabbitmqctl(args)?;
                }
                node.wait_ready(READY_TIMEOUT)?;
            }
            cluster.push(node);
        }
        Ok(cluster)
    }

    /// Starts ActiveMQ's shared-store master/slave: two brokers over the first one's KahaDB
    /// directory, each with its own STOMP port. The first takes the lock and is ready when it
    /// answers the handshake; the second is ready once it logged that it is in slave mode.
    pub fn start_master_slave(store: SharedKahaDb) -> Result<Vec<Self>, HarnessError> {
        let mut master = BrokerProcess::new(Server::ActiveMq, None, None)?;
        master.share(master.kahadb.clone(), store)?;
        master.restart()?;
        let mut slave = BrokerProcess::new(Server::ActiveMq, None, None)?;
        slave.share(master.kahadb.clone(), store)?;
        slave.restart()?;
        Ok(vec![master, slave])
    }

    /// Points this ActiveMQ broker at a shared KahaDB, with the locker's settings.
    fn share(&mut self, kahadb: PathBuf, store: SharedKahaDb) -> Result<(), HarnessError> {
        self.kahadb = kahadb;
        self.shared = Some(store);
        self.configure(true)
    }

    /// Is this broker a slave waiting for the shared KahaDB's lock since its last start?
    pub fn is_slave(&self) -> bool {
        self.shared.is_some()
            && !handshake(self.server, self.address())
            && self.log_since_start().contains(SLAVE_MODE)
    }

    /// How many times this broker opened its connector: under master/slave, became master.
    pub fn times_master(&self) -> usize {
        fs::read_to_string(self.dir.join("server.out"))
            .unwrap_or_default()
            .matches(CONNECTOR_STARTED)
            .count()
    }

    fn log_since_start(&self) -> String {
        let text = fs::read(self.dir.join("server.out")).unwrap_or_default();
        String::from_utf8_lossy(text.get(self.log_mark..).unwrap_or_default()).into_owned()
    }

    /// A server on a fresh data directory, configured and not yet started; with `epmd_port`,
    /// it registers with that cluster's port mapper instead of starting its own.
    fn new(
        server: Server,
        epmd_port: Option<u16>,
        net: Option<Netns>,
    ) -> Result<Self, HarnessError> {
        server.check_installed()?;
        let dir = fresh_dir(match server {
            Server::RabbitMq => "rabbitmq",
            Server::ActiveMq => "activemq",
        })?;
        let mut process = BrokerProcess {
            server,
            kahadb: dir.join("data").join("kahadb"),
            shared: None,
            log_mark: 0,
            bridge: None,
            dir,
            port: free_port()?,
            epmd_port: epmd_port.map_or_else(free_port, Ok)?,
            dist_port: free_port()?,
            epmd: None,
            child: None,
            paused: false,
            net,
            starts: 0,
        };
        // A node in a namespace of its own has no port mapper to share.
        let own_epmd = epmd_port.is_none() || process.net.is_some();
        process.configure(own_epmd)?;
        Ok(process)
    }

    /// Is this a cluster node on a bridge, known to its peers by its address?
    fn on_bridge(&self) -> bool {
        self.net.as_ref().is_some_and(|n| n.bridged)
    }

    /// The Erlang node name: `mqcheck<port>@localhost`, or on a bridge the long name
    /// `mqcheck@<address>`.
    fn node_name(&self) -> String {
        if self.on_bridge() {
            format!("mqcheck@{}", self.ip())
        } else {
            format!("mqcheck{}@localhost", self.port)
        }
    }

    /// Runs `rabbitmqctl` against this node, within a minute, where the node runs.
    fn rabbitmqctl(&self, args: &[&str]) -> Result<(), HarnessError> {
        let long = if self.on_bridge() { "true" } else { "false" };
        run(self
            .here("timeout")
            .arg("60")
            .arg(RABBITMQCTL)
            .args(["-n", &self.node_name()])
            .args(args)
            .env("HOME", &self.dir)
            .env("RABBITMQ_USE_LONGNAME", long)
            .env("ERL_EPMD_PORT", self.epmd_port.to_string()))
    }

    pub fn server(&self) -> Server {
        self.server
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((self.ip(), self.port))
    }

    /// Where clients reach the server: its namespace's address, or loopback.
    pub fn ip(&self) -> Ipv4Addr {
        self.net
            .as_ref()
            .map_or(Ipv4Addr::LOCALHOST, |n| n.broker_ip)
    }

    /// A command run where the server runs: inside its namespace, if it has one.
    fn here(&self, program: &str) -> Command {
        match &self.net {
            Some(net) => net.command(program),
            None => Command::new(program),
        }
    }

    /// Does a plan's action to this server. A restart waits until the server is ready; a hole
    /// in the network needs a server started with [`Self::start_isolated`].
    pub fn apply(&mut self, act: Act) -> Result<(), HarnessError> {
        match act {
            Act::Crash => self.kill(),
            Act::Restart => self.restart()?,
            Act::Pause => self.pause(),
            Act::Resume => self.resume(),
            Act::Open(hole) | Act::Close(hole) => {
                let net = self.net.as_mut().ok_or_else(|| {
                    HarnessError::new("a network fault on a broker without a network of its own")
                })?;
                if matches!(act, Act::Open(_)) {
                    net.open(hole)?;
                } else {
                    net.close(hole)?;
                }
            }
        }
        Ok(())
    }

    /// Closes every hole in the server's network.
    pub fn heal(&mut self) -> Result<(), HarnessError> {
        self.net.as_mut().map_or(Ok(()), Netns::heal)
    }

    /// Is the server's process up (started and not killed)?
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    fn configure(&mut self, own_epmd: bool) -> Result<(), HarnessError> {
        let write = |name: &str, text: String| {
            fs::write(self.dir.join(name), text)
                .map_err(|e| HarnessError::new(format!("cannot write {name}: {e}")))
        };
        match self.server {
            Server::RabbitMq => {
                for sub in ["mnesia", "log"] {
                    fs::create_dir_all(self.dir.join(sub))
                        .map_err(|e| HarnessError::new(format!("cannot create {sub}: {e}")))?;
                }
                write(
                    "rabbit.conf",
                    format!(
                        "listeners.tcp.1 = {}:{}\nloopback_users = none\n",
                        self.ip(),
                        self.port
                    ),
                )?;
                write("enabled_plugins", "[].\n".into())?;
                // One cookie for every node, so a cluster's nodes and rabbitmqctl may talk.
                write(".erlang.cookie", "MQCHECKCONFORMANCE".into())?;
                fs::set_permissions(
                    self.dir.join(".erlang.cookie"),
                    fs::Permissions::from_mode(0o400),
                )
                .map_err(|e| HarnessError::new(format!("cannot protect the cookie: {e}")))?;
                if !own_epmd {
                    return Ok(());
                }
                // On a bridge the peers ask the node's own address.
                let listen = if self.on_bridge() {
                    format!("127.0.0.1,{}", self.ip())
                } else {
                    "127.0.0.1".into()
                };
                let epmd = self
                    .here(EPMD)
                    .args(["-port", &self.epmd_port.to_string(), "-address", &listen])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .map_err(|e| HarnessError::new(format!("cannot start {EPMD}: {e}")))?;
                self.epmd = Some(epmd);
            }
            Server::ActiveMq => {
                let data = self.dir.join("data");
                // Under master/slave the locker is written out, with the model's settings.
                let (keep_alive, locker) = match self.shared {
                    Some(store) => (
                        format!(r#" lockKeepAlivePeriod="{}""#, store.lock_keep_alive_period),
                        format!(
                            r#"<locker><shared-file-locker lockAcquireSleepInterval="{}"/></locker>"#,
                            store.lock_acquire_sleep_interval
                        ),
                    ),
                    None => (String::new(), String::new()),
                };
                write(
                    "activemq.xml",
                    format!(
                        r#"<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="mqcheck" dataDirectory="{data}">
    <persistenceAdapter><kahaDB directory="{kahadb}"{keep_alive}>{locker}</kahaDB></persistenceAdapter>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://{ip}:{port}"/>
    </transportConnectors>
  </broker>
</beans>
"#,
                        data = data.display(),
                        kahadb = self.kahadb.display(),
                        ip = self.ip(),
                        port = self.port
                    ),
                )?;
                // The broker's own log on its output, so that a slave can be told from a broker
                // that never came up, and a failure quotes what the broker said.
                write(
                    "log4j.properties",
                    "log4j.rootLogger=INFO, out\n\
                     log4j.appender.out=org.apache.log4j.ConsoleAppender\n\
                     log4j.appender.out.layout=org.apache.log4j.PatternLayout\n\
                     log4j.appender.out.layout.ConversionPattern=%d{HH:mm:ss,SSS} %-5p %c{1} - %m%n\n"
                        .into(),
                )?;
            }
        }
        Ok(())
    }

    fn command(&self) -> Command {
        let dir = &self.dir;
        match self.server {
            Server::RabbitMq => {
                let mut c = self.here(RABBITMQ_SERVER);
                // Distribution listens where the peers reach the node: loopback, or on a bridge
                // the node's address.
                let dist_ip = if self.on_bridge() {
                    self.ip()
                } else {
                    Ipv4Addr::LOCALHOST
                };
                let interface = dist_ip.octets().map(|o| o.to_string()).join(",");
                c.env("HOME", dir)
                    .env(
                        "RABBITMQ_USE_LONGNAME",
                        if self.on_bridge() { "true" } else { "false" },
                    )
                    .env("RABBITMQ_NODENAME", self.node_name())
                    .env("RABBITMQ_NODE_PORT", self.port.to_string())
                    .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
                    .env("ERL_EPMD_PORT", self.epmd_port.to_string())
                    .env("RABBITMQ_CONFIG_FILE", dir.join("rabbit"))
                    .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
                    .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
                    .env("RABBITMQ_LOG_BASE", dir.join("log"))
                    .env("RABBITMQ_PID_FILE", dir.join("rabbit.pid"))
                    .env(
                        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                        format!("-kernel inet_dist_use_interface {{{interface}}}"),
                    );
                c
            }
            Server::ActiveMq => {
                let mut c = self.here(JAVA);
                c.args([
                    "-Xms64M",
                    "-Xmx256M",
                    &format!(
                        "-Dlog4j.configuration=file:{}",
                        dir.join("log4j.properties").display()
                    ),
                    &format!("-Dactivemq.home={ACTIVEMQ_HOME}"),
                    &format!("-Dactivemq.base={}", dir.display()),
                    &format!("-Dactivemq.conf={}", dir.display()),
                    &format!("-Dactivemq.data={}", dir.join("data").display()),
                    "-jar",
                    ACTIVEMQ_JAR,
                    "start",
                    &format!("xbean:file:{}", dir.join("activemq.xml").display()),
                ]);
                c
            }
        }
    }

    /// Starts the server on its data directory (after a crash: the same data) and waits for
    /// its handshake.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.out"))
            .map_err(|e| HarnessError::new(format!("cannot open the server's log: {e}")))?;
        self.log_mark = log
            .metadata()
            .map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX));
        let err = log
            .try_clone()
            .map_err(|e| HarnessError::new(format!("cannot open the server's log: {e}")))?;
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| HarnessError::new(format!("cannot start {:?}: {e}", self.server)))?;
        self.child = Some(child);
        self.starts += 1;
        self.wait_ready(READY_TIMEOUT)
    }

    /// Waits until the server answers its protocol's handshake (or, sharing a KahaDB, waits as
    /// a slave for its lock), or fails after `timeout` with the end of its log.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(HarnessError::new(format!(
                        "{:?} exited ({status}) before it was ready: {}",
                        self.server,
                        self.log_tail()
                    )));
                }
            }
            if handshake(self.server, self.address()) || self.is_slave() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::new(format!(
                    "{:?} did not answer its handshake on {} within {} s: {}",
                    self.server,
                    self.address(),
                    timeout.as_secs(),
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join("server.out")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// `kill -9` of every process of the server; it stays down until [`Self::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(&child, libc::SIGKILL);
            let _ = child.wait();
            self.paused = false;
        }
    }

    /// The model's `crash`: kill, and start again on the same data.
    pub fn crash(&mut self) -> Result<(), HarnessError> {
        self.kill();
        self.restart()
    }

    /// `SIGSTOP` to the server's processes.
    pub fn pause(&mut self) {
        if let Some(child) = &self.child {
            signal_group(child, libc::SIGSTOP);
            self.paused = true;
        }
    }

    /// `SIGCONT` after [`Self::pause`].
    pub fn resume(&mut self) {
        if let Some(child) = &self.child {
            signal_group(child, libc::SIGCONT);
        }
        self.paused = false;
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if self.paused {
            self.resume();
        }
        self.kill();
        if let Some(mut epmd) = self.epmd.take() {
            signal_group(&epmd, libc::SIGKILL);
            let _ = epmd.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Does a server answer its protocol's opening on `addr`?
pub fn handshake(server: Server, addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let (hello, answer): (&[u8], &[u8]) = match server {
        // AMQP 0-9-1's protocol header; the server answers with a method frame (type 1):
        // connection.start.
        Server::RabbitMq => (b"AMQP\x00\x00\x09\x01", b"\x01"),
        Server::ActiveMq => (
            b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\x00",
            b"CONNECTED",
        ),
    };
    if s.write_all(hello).is_err() {
        return false;
    }
    let mut got = vec![0u8; answer.len()];
    s.read_exact(&mut got).is_ok() && got == answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_names_the_package_to_install() {
        let err = check_files(&[("/nonexistent/mqcheck/rabbitmq-server", "rabbitmq-server")])
            .unwrap_err();
        assert!(err
            .0
            .contains("apt-get install -y --no-install-recommends rabbitmq-server"));
        assert!(check_files(&[("/", "base-files")]).is_ok());
    }

    #[test]
    fn nothing_listening_is_not_ready() {
        let port = free_port().unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        assert!(!handshake(Server::RabbitMq, addr));
    }

    #[test]
    fn a_server_that_answers_otherwise_is_not_ready() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 8];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"ERROR\n\n\x00");
        });
        assert!(!handshake(Server::ActiveMq, addr));
        t.join().unwrap();
    }
}
