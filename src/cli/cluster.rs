//! `examroom cluster status` and `examroom drain`: the cluster as its database sees it, and asking one node to
//! drain and stop over the signed node-to-node channel (the same path SIGTERM takes on that node).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::support::open_db;

/// Prints the status; exit 2 when degraded.
pub async fn status(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (c, db) = open_db(config, data_dir).await?;
    let dead_after_ms = c.cluster.dead_after_seconds as i64 * 1000;
    let required = examroom::cluster::status::required_leases(&c);
    let status = examroom::cluster::status::status(&db, &required, dead_after_ms).await?;
    db.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", status.render());
    }
    Ok(if status.degraded() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Asks `node` to drain, then waits until it has left the cluster (its row is gone) or the drain's limit, the
/// shutdown grace and a heartbeat's death have passed.
pub async fn drain(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    node: Option<String>,
) -> anyhow::Result<ExitCode> {
    let (c, db) = open_db(config, data_dir).await?;
    if db.backend() != examroom::store::Backend::Postgres {
        anyhow::bail!(
            "one node (SQLite): stop it with SIGTERM (`systemctl stop examroom`); it drains the same way, \
             waiting up to cluster.drain_seconds for its live visits"
        );
    }
    let Some(node) = node.or_else(|| c.cluster.node_id.clone()) else {
        anyhow::bail!("name the node with --node (see `examroom cluster status`)");
    };
    let cluster = examroom::cluster::Cluster::new(&c, db.clone())?;
    let dead_after_ms = c.cluster.dead_after_seconds as i64 * 1000;
    let Some(row) = db
        .live_nodes(dead_after_ms)
        .await?
        .into_iter()
        .find(|n| n.node_id == node)
    else {
        anyhow::bail!("no live node {node} (see `examroom cluster status`)");
    };
    cluster
        .call(
            &row.node_id,
            &row.internal_url,
            examroom::http::internal::DRAIN_PATH,
            serde_json::to_vec(&serde_json::json!({ "node": node }))?,
        )
        .await?;
    println!(
        "{node}: draining (up to {} s for its live visits)",
        c.cluster.drain_seconds
    );
    let limit = Duration::from_secs(
        c.cluster.drain_seconds + c.server.shutdown_grace_seconds + c.cluster.dead_after_seconds,
    );
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < limit {
        let rows = db.all_nodes().await?;
        let Some(row) = rows.into_iter().find(|n| n.node_id == node) else {
            println!(
                "{node}: left the cluster after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            db.close().await;
            return Ok(ExitCode::SUCCESS);
        };
        if last != Some(row.live_visits) {
            println!(
                "{node}: {} live visit(s), {} socket(s)",
                row.live_visits, row.sockets
            );
            last = Some(row.live_visits);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    db.close().await;
    eprintln!("{node}: still in the cluster after {} s", limit.as_secs());
    Ok(ExitCode::from(1))
}
