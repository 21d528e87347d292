//! A real Prometheus in the loop: Debian's `prometheus` server, started on loopback with
//! static scrape targets every second, and [`WorkloadStandIn`], a process-local exporter of
//! what a payments workload exports (`payment_processor_transactions_total{status}` and the
//! `payment_processor_duration_seconds` histogram) at a rate and success ratio a test sets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::admission::free_address;
use crate::monitoring::debian_tool;

/// One static scrape target and the labels its series get (as a ServiceMonitor would give
/// them: `namespace`, `service`).
#[derive(Clone, Debug)]
pub struct Target {
    pub address: SocketAddr,
    pub labels: Vec<(String, String)>,
}

/// A Prometheus server of this test, stopped and its data removed when dropped.
#[derive(Debug)]
pub struct RealPrometheus {
    child: Child,
    dir: PathBuf,
    pub url: String,
}

impl RealPrometheus {
    /// Starts Prometheus scraping `targets` every second, and waits until it is ready.
    pub async fn start(name: &str, targets: &[Target]) -> Result<Self> {
        Self::start_with_rules(name, targets, None).await
    }

    /// [`Self::start`], evaluating the groups of `rules` (a rule file, see
    /// [`crate::monitoring::rule_file`]) every second. A target's `job` label names its job;
    /// its own labels are kept over the target's (`honor_labels`, as deploy/monitoring's
    /// ServiceMonitors do).
    pub async fn start_with_rules(
        name: &str,
        targets: &[Target],
        rules: Option<&serde_json::Value>,
    ) -> Result<Self> {
        let binary = debian_tool("prometheus")?;
        let port = free_address()?.port();
        let dir = std::env::temp_dir().join(format!("prometheus-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut config =
            String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n");
        if let Some(rules) = rules {
            std::fs::write(dir.join("rules.yml"), serde_yaml::to_string(rules)?)?;
            config.push_str("rule_files: [rules.yml]\n");
        }
        config.push_str("scrape_configs:\n");
        for (i, target) in targets.iter().enumerate() {
            let job = target
                .labels
                .iter()
                .find(|(k, _)| k == "job")
                .map_or_else(|| format!("target-{i}"), |(_, v)| v.clone());
            let labels: Vec<String> = target
                .labels
                .iter()
                .filter(|(k, _)| k != "job")
                .map(|(k, v)| format!("{k}: {v:?}"))
                .collect();
            config.push_str(&format!(
                "  - job_name: {job:?}\n    honor_labels: true\n    static_configs:\n      - targets: [\"{}\"]\n        labels: {{{}}}\n",
                target.address,
                labels.join(", ")
            ));
        }
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting prometheus")?;
        let prometheus = Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        prometheus.ready().await?;
        Ok(prometheus)
    }

    async fn ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let address = self.url.trim_start_matches("http://").to_string();
        loop {
            if let Ok(mut socket) = tokio::net::TcpStream::connect(&address).await {
                let request = format!(
                    "GET /-/ready HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
                );
                let mut answer = String::new();
                if socket.write_all(request.as_bytes()).await.is_ok()
                    && socket.read_to_string(&mut answer).await.is_ok()
                    && answer.starts_with("HTTP/1.1 200")
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
                bail!("Prometheus was not ready within 30s:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for RealPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Counters as of the last scrape.
#[derive(Debug)]
struct Counts {
    at: Instant,
    success: f64,
    failed: f64,
    rate: f64,
    ratio: f64,
}

/// What a payments workload exports, served on loopback: `rate` payments a second, `ratio`
/// of them successful, each taking 85 ms.
#[derive(Clone, Debug)]
pub struct WorkloadStandIn {
    counts: Arc<Mutex<Counts>>,
    pub address: SocketAddr,
}

/// The mean payment duration a stand-in reports.
pub const PAYMENT_SECONDS: f64 = 0.085;

impl WorkloadStandIn {
    pub async fn start(rate: f64, ratio: f64) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let stand_in = Self {
            counts: Arc::new(Mutex::new(Counts {
                at: Instant::now(),
                success: 0.0,
                failed: 0.0,
                rate,
                ratio,
            })),
            address: listener.local_addr()?,
        };
        let serving = stand_in.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = serving.exposition();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        Ok(stand_in)
    }

    /// From now on, `ratio` of the payments succeed.
    pub fn set_success_ratio(&self, ratio: f64) {
        self.advance(|c| c.ratio = ratio);
    }

    fn advance(&self, then: impl FnOnce(&mut Counts)) -> (f64, f64) {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let done = c.rate * now.duration_since(c.at).as_secs_f64();
        c.success += done * c.ratio;
        c.failed += done * (1.0 - c.ratio);
        c.at = now;
        then(&mut c);
        (c.success.floor(), c.failed.floor())
    }

    fn exposition(&self) -> String {
        let (success, failed) = self.advance(|_| {});
        let count = success + failed;
        let sum = count * PAYMENT_SECONDS;
        format!(
            "# TYPE payment_processor_transactions_total counter\n\
             payment_processor_transactions_total{{status=\"success\"}} {success}\n\
             payment_processor_transactions_total{{status=\"failed\"}} {failed}\n\
             # TYPE payment_processor_duration_seconds histogram\n\
             payment_processor_duration_seconds_bucket{{le=\"0.1\"}} {count}\n\
             payment_processor_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             payment_processor_duration_seconds_sum {sum}\n\
             payment_processor_duration_seconds_count {count}\n"
        )
    }
}
