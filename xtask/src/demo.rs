//! `cargo xtask demo [--serve]`: the operators on the in-memory API server.
//!
//! Starts testkit on loopback with a kubeconfig, installs the CRDs and the samples from
//! `deploy/`, switches on the simulated workload controllers, runs the operator binaries
//! against it exactly as they would run against a cluster (`KUBECONFIG`), and prints what
//! converged. `--serve` keeps everything running for kubectl until Ctrl-C.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use operator_core::descriptor::Converged;
use testkit::ApiServer;

use crate::{OPERATORS, demo_admission};

/// Kinds of children the summary lists (those owned by each custom resource).
const CHILD_KINDS: &[(&str, &str)] = &[
    ("apps/v1", "deployments"),
    ("v1", "services"),
    ("v1", "configmaps"),
    ("rbac.authorization.k8s.io/v1", "roles"),
    ("v1", "serviceaccounts"),
    ("v1", "persistentvolumeclaims"),
    ("autoscaling/v2", "horizontalpodautoscalers"),
    ("policy/v1", "poddisruptionbudgets"),
    ("batch/v1", "cronjobs"),
];

/// Stands in for cert-manager: the TLS Secret the PaymentService sample names. Its content is
/// a placeholder; nothing on the in-memory server reads it.
const SAMPLE_TLS_SECRET: &str = "apiVersion: v1
kind: Secret
metadata: {name: payment-gateway-tls, namespace: payments}
type: kubernetes.io/tls
stringData: {tls.crt: placeholder, tls.key: placeholder}
";

/// Stands in for the platform's Secrets: the ones the ClearingAdapter sample references (its
/// partners' CA bundles, client certificate, credentials and encryption key) and the
/// SagaOrchestrator's persistence credentials. Placeholders: nothing on the in-memory server
/// reads them, and the demo's clearing adapter operator sends no partner check.
const SAMPLE_SECRETS: &[(&str, &[&str])] = &[
    ("acme-bank-ca", &["ca.crt"]),
    ("acme-bank-client-tls", &["tls.crt", "tls.key"]),
    ("acme-bank-credentials", &["token"]),
    ("globex-clearing-ca", &["ca.crt"]),
    ("globex-clearing-credentials", &["api-key"]),
    ("card-clearing-encryption", &["key"]),
    // The SagaOrchestrator sample's persistence credentials (CloudNativePG's `<cluster>-app`).
    ("saga-db-app", &["username", "password"]),
];

const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

struct Operators(Vec<Child>);

impl Drop for Operators {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn build_operators(root: &Path) -> Result<()> {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(root).args(["build", "--quiet"]);
    for operator in OPERATORS {
        cargo.args(["-p", operator.package()]);
    }
    let status = cargo.status().context("running cargo build")?;
    if !status.success() {
        bail!("building the operators failed");
    }
    Ok(())
}

fn start_operators(
    root: &Path,
    kubeconfig: &Path,
    serve: bool,
    webhooks: &[demo_admission::Webhooks],
) -> Result<Operators> {
    let target = crate::target_dir(root);
    let logs = target.join("demo");
    let mut children = Vec::new();
    for ((i, operator), webhook) in OPERATORS.iter().enumerate().zip(webhooks) {
        let binary = operator.binary_name();
        let log = std::fs::File::create(logs.join(format!("{binary}.log")))?;
        let (metrics, health) = if serve {
            (
                format!("127.0.0.1:{}", 18080 + 2 * i),
                format!("127.0.0.1:{}", 18081 + 2 * i),
            )
        } else {
            ("0".to_string(), "0".to_string())
        };
        let mut command = Command::new(target.join("debug").join(binary));
        if !operator.demo_settings.is_empty() {
            // The operator's section of a config file, for what the demo cannot do.
            let config = logs.join(format!("{binary}.yaml"));
            let section = operator.binary.config_section;
            let settings = operator.demo_settings.replace('\n', "\n  ");
            std::fs::write(&config, format!("{section}:\n  {settings}\n"))?;
            command.arg(format!("--config={}", config.display()));
        }
        let child = command
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .args([
                "--log-format",
                "text",
                "--metrics-bind-address",
                &metrics,
                "--health-probe-bind-address",
                &health,
            ])
            .arg(format!("--webhook-bind-address={}", webhook.address))
            .arg("--webhook-cert-dir")
            .arg(&webhook.cert_dir)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {binary}"))?;
        children.push(child);
    }
    Ok(Operators(children))
}

/// One line per custom resource: its phase, Ready, and the children it owns.
fn summary(server: &ApiServer) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut converged = true;
    for served in OPERATORS.iter().flat_map(|o| o.resources) {
        for obj in server.objects(&served.resource.api_version(), &served.resource.plural()) {
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            let uid = &obj["metadata"]["uid"];
            let phase = obj["status"]["phase"].as_str().unwrap_or("-");
            let ready = Converged::Ready.check(&obj);
            converged &= served.converged.check(&obj);
            let children: Vec<String> = CHILD_KINDS
                .iter()
                .flat_map(|(v, p)| server.objects(v, p))
                .filter(|child| {
                    child["metadata"]["ownerReferences"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|o| o["uid"] == *uid)
                })
                .map(|child| {
                    format!(
                        "{}/{}",
                        child["kind"].as_str().unwrap_or_default(),
                        child["metadata"]["name"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            lines.push(format!(
                "{ns}/{name}: {phase}, Ready={ready}; children: {}",
                children.join(", ")
            ));
        }
    }
    (lines, converged)
}

pub async fn run(root: &Path, serve: bool) -> Result<()> {
    build_operators(root)?;
    let server = ApiServer::new();
    let _workloads = server.simulate_workloads();
    let ca = demo_admission::DemoCa::new()?;
    ca.install_crds(root, &server)?;
    server.load_manifests(&root.join("deploy/namespaces"))?;
    server
        .create_from_yaml(SAMPLE_TLS_SECRET)
        .map_err(|e| anyhow::anyhow!("creating the sample TLS Secret: {e:?}"))?;
    for (name, keys) in SAMPLE_SECRETS {
        let data: Vec<String> = keys.iter().map(|k| format!("{k}: placeholder")).collect();
        let secret = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: payments}}\nstringData: {{{}}}\n",
            data.join(", ")
        );
        server
            .create_from_yaml(&secret)
            .map_err(|e| anyhow::anyhow!("creating the sample Secret {name}: {e:?}"))?;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let target = crate::target_dir(root);
    std::fs::create_dir_all(target.join("demo"))?;
    let webhooks = demo_admission::install(root, &server, &target.join("demo"), &ca, OPERATORS)?;
    let kubeconfig = target.join("demo").join("kubeconfig");
    std::fs::write(&kubeconfig, testkit::loopback::kubeconfig(addr))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(testkit::loopback::serve(server.clone(), listener, async {
        let _ = stopped.await;
    }));
    println!("API server (in memory) on http://{addr}; operators starting");
    let operators = start_operators(root, &kubeconfig, serve, &webhooks)?;
    demo_admission::reachable(&webhooks, CONVERGE_TIMEOUT).await?;
    let created = demo_admission::create_samples(root, &server.client(), OPERATORS).await?;
    println!("{created} samples created through the operators' admission webhooks");

    let started = Instant::now();
    let converged = loop {
        let (_, converged) = summary(&server);
        if converged || started.elapsed() > CONVERGE_TIMEOUT {
            break converged;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (lines, _) = summary(&server);
    println!("after {:.1}s:", started.elapsed().as_secs_f64());
    for line in &lines {
        println!("  {line}");
    }
    let refusals = demo_admission::refuse_twins(root, &server.client(), OPERATORS).await;
    match &refusals {
        Ok(lines) => {
            println!("each sample's invalid twin, refused at admission:");
            for line in lines {
                println!("  {line}");
            }
        }
        Err(e) => eprintln!("{e:#}"),
    }
    let events = server.objects("events.k8s.io/v1", "events");
    println!(
        "{} events recorded (kubectl get events -A with the KUBECONFIG below)",
        events.len()
    );
    if !converged {
        eprintln!(
            "not every resource became Ready; operator logs: {}",
            target.join("demo").display()
        );
    }
    if serve {
        println!("\nexport KUBECONFIG={}", kubeconfig.display());
        for served in OPERATORS.iter().flat_map(|o| o.resources) {
            println!("kubectl get {} -A", served.resource.short_name());
        }
        for (i, operator) in OPERATORS.iter().enumerate() {
            let binary = operator.binary_name();
            println!(
                "{binary}: metrics http://127.0.0.1:{}/metrics   health http://127.0.0.1:{}/readyz",
                18080 + 2 * i,
                18081 + 2 * i
            );
        }
        println!("Ctrl-C stops.");
        let _ = tokio::signal::ctrl_c().await;
    }
    drop(operators);
    let _ = stop.send(());
    let _ = serving.await;
    if !converged {
        bail!("the demo did not converge within {CONVERGE_TIMEOUT:?}");
    }
    refusals.map(|_| ())
}
