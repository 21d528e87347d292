//! README's "Pointing at a real cluster": an operator run from a workstation with nothing but
//! `KUBECONFIG` (no flags, no KUBERNETES_SERVICE_HOST) serves no webhook, logs no ERROR and
//! becomes ready on a free loopback port; two of them run side by side.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::operator::{Operator, binary, work_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn two_operators_run_side_by_side_out_of_cluster_and_become_ready() -> Result<()> {
    let Some(ns) = e2e::cluster("out_of_cluster").await? else {
        return Ok(());
    };
    let operators = [
        Operator::of(&payment_service::OPERATOR),
        Operator::of(&trading_algorithm::OPERATOR),
    ];
    let dir = work_dir().join(&ns.name);
    std::fs::create_dir_all(&dir)?;
    let mut running = Vec::new();
    for op in &operators {
        let log = dir.join(format!("{}.log", op.binary));
        let file = std::fs::File::create(&log)?;
        // As README says: `cargo run … -- --log-format text` against the current context,
        // here limited to this test's namespace.
        let child = Command::new(binary(op)?)
            .arg("--log-format")
            .arg("text")
            .env("WATCH_NAMESPACE", &ns.name)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("starting {}", op.binary))?;
        running.push((op, log, Running(child)));
    }
    for (op, log, _) in &running {
        let address = e2e::until(
            &format!("{} says where its health endpoints listen", op.binary),
            Duration::from_secs(60),
            || async { Ok(listening_address(&std::fs::read_to_string(log)?)) },
        )
        .await?;
        e2e::until(
            &format!("{} ready on {address}", op.binary),
            Duration::from_secs(60),
            || async { Ok(ready(&address).await.then_some(())) },
        )
        .await?;
    }
    for (op, log, _) in &running {
        let text = std::fs::read_to_string(log)?;
        assert!(
            !text.contains("ERROR"),
            "{} logged an error out of cluster:\n{text}",
            op.binary
        );
        assert!(
            !text.contains("admission webhooks listening"),
            "{} served webhooks out of cluster",
            op.binary
        );
    }
    drop(running);
    ns.cleanup().await
}

/// The address of the `/readyz` endpoint, from the line the runtime logs when it listens.
fn listening_address(log: &str) -> Option<String> {
    log.lines()
        .filter(|l| l.contains("admin endpoints listening") && l.contains("/readyz"))
        .find_map(|l| {
            l.split("address=")
                .nth(1)?
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
}

/// Whether `GET /readyz` answers 200.
async fn ready(address: &str) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        return false;
    };
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    answer.starts_with("HTTP/1.1 200")
}
