//! redis-server processes for tests: each on a free port with its own directory, never the
//! machine's 6379. Data is kept in an append-only file fsynced on every write, so a server
//! killed with SIGKILL and restarted comes back with every acknowledged write.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::tcp_proxy::TcpProxy;

/// redis-cli's output for `args` against the server on `port`.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One redis-server.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    /// A durable standalone server.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra command-line options.
    pub fn start_with(extra: &[&str]) -> Self {
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("redis.log"))
            .expect("redis log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's directory.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Kill with SIGKILL: no shutdown, no final save.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same port and directory (reloading the append-only file).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGSTOP: the server hangs (a replica stops following its master) until [`RedisServer::resume`].
    pub fn pause(&self) {
        super::signal(self.child.as_ref().expect("running"), "-STOP");
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&self) {
        super::signal(self.child.as_ref().expect("running"), "-CONT");
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A replica of the master at `127.0.0.1:master_port` (this server's port, or a proxy in
    /// front of it), once it has synchronised.
    pub fn replica_via(master_port: u16) -> RedisServer {
        let replica =
            RedisServer::start_with(&["--replicaof", "127.0.0.1", &master_port.to_string()]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
        {
            assert!(Instant::now() < deadline, "the replica never synchronised");
            std::thread::sleep(Duration::from_millis(20));
        }
        replica
    }

    /// Run redis-cli against this server and return its output.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }

    /// The `calls=` count of one command in `INFO commandstats` (0 if never called).
    pub fn calls(&self, command: &str) -> u64 {
        let stats = self.cli(&["INFO", "commandstats"]);
        stats
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{command}:")))
            .and_then(|l| l.split("calls=").nth(1))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of three masters on free ports.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        Self::start_with_replicas(0)
    }

    /// Three masters, each with `replicas` replicas (`nodes`: the masters first).
    pub fn start_with_replicas(replicas: usize) -> Self {
        Self::form(Self::nodes(replicas), replicas)
    }

    /// [`RedisCluster::start_with_replicas`], every node announcing a [`TcpProxy`] in front of
    /// it as its address (`cluster-announce-port`), so that every client of the cluster — the
    /// seeds it is given and the nodes `CLUSTER SLOTS` names — goes through the proxies (the
    /// gossip bus does not). The proxies come back in the nodes' order.
    pub async fn start_behind_proxies(replicas: usize) -> (Self, Vec<TcpProxy>) {
        let nodes = Self::nodes(replicas);
        let mut proxies = Vec::new();
        for node in &nodes {
            let proxy = TcpProxy::start(node.addr()).await;
            let port = proxy.port.to_string();
            let bus = (node.port + 10000).to_string();
            node.cli(&["CONFIG", "SET", "cluster-announce-port", &port]);
            node.cli(&["CONFIG", "SET", "cluster-announce-bus-port", &bus]);
            proxies.push(proxy);
        }
        let cluster = tokio::task::block_in_place(|| Self::form(nodes, replicas));
        (cluster, proxies)
    }

    fn nodes(replicas: usize) -> Vec<RedisServer> {
        (0..3 * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect()
    }

    fn form(nodes: Vec<RedisServer>, replicas: usize) -> Self {
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            while !node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "cluster did not become ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Every replica following its master, and every node knowing it.
        for node in &nodes {
            let slaves = |table: String| {
                table
                    .lines()
                    .filter(|l| l.split(' ').nth(2).is_some_and(|f| f.contains("slave")))
                    .count()
            };
            while slaves(node.cli(&["CLUSTER", "NODES"])) < 3 * replicas
                || (node.cli(&["ROLE"]).starts_with("slave")
                    && !node
                        .cli(&["INFO", "replication"])
                        .contains("master_link_status:up"))
            {
                assert!(Instant::now() < deadline, "replicas did not settle");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    /// The node serving `key` as master, and its replicas (by `CLUSTER NODES`).
    pub fn serving(&self, key: &str) -> (&RedisServer, Vec<&RedisServer>) {
        let slot: u32 = self.nodes[0]
            .cli(&["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("a slot");
        let table = self.nodes[0].cli(&["CLUSTER", "NODES"]);
        let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split(' ').collect()).collect();
        let port_of = |row: &Vec<&str>| -> u16 {
            let addr = row[1].split('@').next().unwrap_or("");
            addr.rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0)
        };
        let covers = |row: &Vec<&str>| {
            row.iter().skip(8).any(|range| match range.split_once('-') {
                Some((a, b)) => {
                    (a.parse().unwrap_or(u32::MAX)..=b.parse().unwrap_or(0)).contains(&slot)
                }
                None => range.parse::<u32>().is_ok_and(|s| s == slot),
            })
        };
        let master = rows
            .iter()
            .find(|r| r[2].contains("master") && covers(r))
            .expect("a master serves the slot");
        let node = |port: u16| {
            self.nodes
                .iter()
                .find(|n| n.port == port)
                .expect("one of ours")
        };
        let replicas = rows
            .iter()
            .filter(|r| r[2].contains("slave") && r[3] == master[0])
            .map(|r| node(port_of(r)))
            .collect();
        (node(port_of(master)), replicas)
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Empty every node.
    pub fn flush(&self) {
        for n in &self.nodes {
            n.cli(&["FLUSHALL"]);
        }
    }
}

/// The edge's Redis store and the sale seeder over one target, addressed by product id as the
/// tests like it.
pub struct SaleStore {
    pub store: flashgate::stock::redis::RedisStore,
    pub sales: flashgate::stock::redis::sales::RedisSales,
}

impl SaleStore {
    pub fn new(target: flashgate::config::Target, timeout: std::time::Duration) -> Self {
        SaleStore {
            store: flashgate::stock::redis::RedisStore::new(target.clone(), timeout),
            sales: flashgate::stock::redis::sales::RedisSales::new(target, timeout),
        }
    }

    pub async fn load(
        &self,
        product: u64,
        units: u64,
        force: bool,
    ) -> Result<flashgate::stock::redis::sales::Load, flashgate::stock::StoreError> {
        use flashgate::stock::SaleKeys;
        self.sales.load(&SaleKeys::of(product), units, force).await
    }

    pub async fn reserve(
        &self,
        product: u64,
        uid: &str,
    ) -> Result<flashgate::stock::Reserve, flashgate::stock::StoreError> {
        use flashgate::stock::{SaleKeys, StockStore};
        self.store
            .reserve(
                &SaleKeys::of(product),
                uid,
                &flashgate::stock::Attempt::new().unwrap(),
            )
            .await
    }

    pub async fn remaining(
        &self,
        product: u64,
    ) -> Result<Option<u64>, flashgate::stock::StoreError> {
        Ok(self.stock(product).await?.map(|s| s.remaining))
    }

    pub async fn stock(
        &self,
        product: u64,
    ) -> Result<Option<flashgate::stock::SaleStock>, flashgate::stock::StoreError> {
        self.sales.stock(product).await
    }
}

/// A redis-server in sentinel mode (`redis-server sentinel.conf --sentinel`) on a free port,
/// monitoring one master as `name` with a quorum of `quorum`, declaring it down after 1 s.
pub struct Sentinel {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    pub fn start(name: &str, master_port: u16, quorum: u32) -> Sentinel {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {name} 127.0.0.1 {master_port} {quorum}\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 10000\n\
                 sentinel parallel-syncs {name} 1\n",
                dir.path().display()
            ),
        )
        .expect("write sentinel.conf");
        let log = std::fs::File::create(dir.path().join("sentinel.log")).expect("log");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel");
        let sentinel = Sentinel {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sentinel
            .cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", name])
            .contains(&master_port.to_string())
        {
            assert!(Instant::now() < deadline, "sentinel {port} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        sentinel
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Run redis-cli against this sentinel.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
