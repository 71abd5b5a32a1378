//! `store:` resolved: where stock lives — in this process (a journal on disk, how it is
//! fsynced) or in Redis (one server, a Cluster, or a master found through Sentinel).

use std::path::PathBuf;
use std::time::Duration;

/// `store:` resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// Stock in this process (one machine only).
    Memory {
        /// Directory of the journal; None keeps nothing across a restart.
        path: Option<PathBuf>,
        /// When the journal reaches the disk.
        fsync: Fsync,
    },
    /// Redis: one server, a Cluster, or a master found through Sentinel.
    Redis {
        /// Where.
        target: Target,
        /// Per-call timeout.
        timeout: Duration,
        /// Wait for replicas to acknowledge each reservation (`store.wait`).
        wait: Option<ReplicaWait>,
    },
}

/// `store.wait`: after each reservation, Redis `WAIT replicas timeout` on the node that ran
/// it; fewer acknowledgements in time make the buy `202 pending`, never forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaWait {
    /// Replicas that must acknowledge.
    pub replicas: u32,
    /// How long to wait for them.
    pub timeout: Duration,
}

/// When appended records reach the disk (like Redis's appendfsync).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Acknowledge after the record's batch is written and fsynced: nothing acknowledged is
    /// lost, even on power loss.
    Always,
    /// Acknowledge after the write; fsync at most once a second. Power loss can lose about the
    /// last second of acknowledged records.
    #[default]
    Everysec,
    /// Acknowledge after the write and leave flushing to the OS.
    No,
}

/// Where a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One Redis server.
    Single(String),
    /// A Redis Cluster, by seed nodes.
    Cluster(Vec<String>),
    /// The master the sentinels at `nodes` monitor as `master`.
    Sentinel {
        /// The monitored master's name.
        master: String,
        /// Sentinel URLs.
        nodes: Vec<String>,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Single(url) => f.write_str(url),
            Target::Cluster(urls) => write!(f, "cluster [{}]", urls.join(", ")),
            Target::Sentinel { master, nodes } => {
                write!(f, "sentinel master {master} [{}]", nodes.join(", "))
            }
        }
    }
}
