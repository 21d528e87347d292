//! Runs the in-memory API server on loopback and writes a kubeconfig for it, so kubectl and
//! the operator binaries can be pointed at a Kubernetes API without a cluster.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use testkit::ApiServer;

#[derive(Debug, Parser)]
#[command(about = "An in-memory Kubernetes API server on loopback, for development and demos")]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: std::net::SocketAddr,
    /// Where to write the kubeconfig that points at the server.
    #[arg(long, default_value = "target/testkit/kubeconfig")]
    kubeconfig: PathBuf,
    /// Directories or files of YAML objects to create at start (CRDs first), e.g. deploy/crds.
    #[arg(long = "load")]
    load: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let server = ApiServer::new();
    for path in &args.load {
        for file in server.load_manifests(path)? {
            eprintln!("loaded {}", file.display());
        }
    }
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .context("binding the listener")?;
    let addr = listener.local_addr()?;
    if let Some(dir) = args.kubeconfig.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.kubeconfig, testkit::loopback::kubeconfig(addr))?;
    println!("testkit API server on http://{addr}");
    println!(
        "export KUBECONFIG={}",
        std::fs::canonicalize(&args.kubeconfig)?.display()
    );
    testkit::loopback::serve(server, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
