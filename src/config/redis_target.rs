//! Where Redis is, as both configuration files say it: one server (a URL), a Cluster (seed
//! nodes) or a master found through Sentinel (its name and the sentinels) — one of three keys,
//! never two. The edge's `store.url | cluster | sentinel` and `flashgate-orders`'
//! `redis | cluster | sentinel` are read by this one function, so they accept and refuse the
//! same things with the same words.

use super::context::Reading;
use super::error::ConfigError;
use super::schema::FileSentinel;
use crate::config::Target;

/// The three keys as a file wrote them, under `prefix` (`store.` on the edge, nothing in
/// `orders.yaml`); `url_key` names the one-server key (`url`, `redis`).
pub(crate) struct RedisKeys<'a> {
    pub prefix: &'a str,
    pub url_key: &'a str,
    pub url: Option<&'a String>,
    pub cluster: Option<&'a Vec<String>>,
    pub sentinel: Option<&'a FileSentinel>,
}

/// The target the keys name, `${NAME}`s expanded; None when none is given. Two given is an
/// error, shown at the later of them; an empty cluster or sentinel list, or an empty master
/// name, too.
pub(crate) fn redis_target(cx: &Reading, keys: &RedisKeys) -> Result<Option<Target>, ConfigError> {
    let RedisKeys {
        prefix,
        url_key,
        url,
        cluster,
        sentinel,
    } = keys;
    let given = [url.is_some(), cluster.is_some(), sentinel.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        let at = if sentinel.is_some() {
            "sentinel"
        } else {
            "cluster"
        };
        return Err(cx.err(
            &format!("{prefix}{at}"),
            format!(
                "give one of {url_key} (one server), cluster (seed nodes) or sentinel (a \
                 monitored master), not two"
            ),
        ));
    }
    let list = |key: &str, urls: &[String], what: &str| -> Result<Vec<String>, ConfigError> {
        if urls.is_empty() {
            return Err(cx.err(key, format!("{key} needs at least one {what}")));
        }
        urls.iter()
            .enumerate()
            .map(|(i, u)| cx.required(&format!("{key}[{i}]"), u))
            .collect()
    };
    Ok(Some(match (url, cluster, sentinel) {
        (Some(url), ..) => Target::Single(cx.required(&format!("{prefix}{url_key}"), url)?),
        (_, Some(urls), _) => Target::Cluster(list(
            &format!("{prefix}cluster"),
            urls,
            "seed node: [redis://host:7000]",
        )?),
        (_, _, Some(s)) => {
            let key = format!("{prefix}sentinel.master");
            let master = cx.required(&key, &s.master)?;
            if master.is_empty() {
                return Err(cx.err(
                    &key,
                    format!("{key} is the name the sentinels monitor the master under"),
                ));
            }
            Target::Sentinel {
                master,
                nodes: list(
                    &format!("{prefix}sentinel.nodes"),
                    &s.nodes,
                    "sentinel: [redis://host:26379]",
                )?,
            }
        }
        (None, None, None) => return Ok(None),
    }))
}
