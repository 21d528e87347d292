//! An operator binary run as a local process, authenticated as the ServiceAccount deploy/
//! gives it (a token from the TokenRequest API), so every request it makes is checked against
//! the RBAC deploy/ grants. Its manager Role is bound in the test's namespace exactly as
//! `rbac.yaml` says to watch another namespace: the same Role and RoleBinding, there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use operator_core::OperatorDescriptor;
use serde_json::Value;

use crate::TestNamespace;
use crate::image::{Launch, program_pid};
use crate::manifests::render;

/// An operator as deploy/ installs it.
#[derive(Clone, Copy, Debug)]
pub struct Operator {
    /// Its folder under deploy/.
    pub overlay: &'static str,
    /// The binary (`cargo build` puts it in the target folder).
    pub binary: &'static str,
}

impl Operator {
    /// The operator an operator crate describes.
    pub const fn of(operator: &OperatorDescriptor) -> Self {
        Self {
            overlay: operator.package(),
            binary: operator.binary.identity.manager,
        }
    }
}

/// How an operator process serves its admission webhooks.
#[derive(Clone, Copy, Debug)]
pub enum Webhooks<'a> {
    Off,
    /// On this address on 127.0.0.1, presenting the certificate in this directory (as
    /// deploy/admission/<operator> does with cert-manager's).
    Files(std::net::SocketAddr, &'a Path),
    /// On this address on 127.0.0.1, with the certificate the operator issues itself (as
    /// deploy/<operator> does), for its Service's names and 127.0.0.1.
    OwnCertificate(std::net::SocketAddr),
}

/// What deploy/<overlay> says about the operator's identity and home.
struct Installed {
    objects: Vec<Value>,
    /// Where its Deployment, ServiceAccount and Lease live.
    home: String,
    account: String,
    /// The namespace its Deployment watches (`WATCH_NAMESPACE`), where its manager Role is.
    watched: String,
    /// `config.yaml` of its ConfigMap.
    config: String,
}

fn installed(op: &Operator) -> Result<Installed> {
    let objects = render(op.overlay)?;
    let kind = |o: &&Value, k: &str| o["kind"] == k;
    let deployment = objects
        .iter()
        .find(|o| kind(o, "Deployment"))
        .context("the overlay's Deployment")?;
    let pod = &deployment["spec"]["template"]["spec"];
    let watched = pod["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "WATCH_NAMESPACE")
        .and_then(|e| e["value"].as_str())
        .unwrap_or_default()
        .to_string();
    let config_name = pod["volumes"][0]["configMap"]["name"]
        .as_str()
        .unwrap_or_default();
    let config = objects
        .iter()
        .find(|o| kind(o, "ConfigMap") && o["metadata"]["name"] == config_name)
        .and_then(|c| c["data"]["config.yaml"].as_str())
        .context("the operator's config.yaml")?
        .to_string();
    Ok(Installed {
        home: deployment["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        account: pod["serviceAccountName"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        watched,
        config,
        objects,
    })
}

/// Where the suite writes operator logs and kubeconfigs: `target/e2e/`.
pub fn work_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("e2e")
}

/// The operator's built binary.
pub fn binary(op: &Operator) -> Result<PathBuf> {
    let dir = std::env::var("E2E_BIN_DIR").map_or_else(
        |_| {
            let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
                |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
                PathBuf::from,
            );
            target.join("debug")
        },
        PathBuf::from,
    );
    let path = dir.join(op.binary);
    if !path.exists() {
        bail!(
            "{} is not built (cargo xtask e2e builds it; or cargo build -p {})",
            path.display(),
            op.overlay
        );
    }
    Ok(path)
}

impl TestNamespace {
    /// Binds the operator's manager Role from deploy/ in this namespace (the documented way to
    /// let it watch another namespace), so it runs here under exactly the rights it ships with.
    pub async fn grant(&self, op: &Operator) -> Result<()> {
        let installed = installed(op)?;
        for object in installed.objects.iter().filter(|o| {
            matches!(o["kind"].as_str(), Some("Role" | "RoleBinding"))
                && o["metadata"]["namespace"] == installed.watched.as_str()
        }) {
            let mut object = object.clone();
            object["metadata"]["namespace"] = Value::String(self.name.clone());
            let gvk = GroupVersionKind::gvk(
                "rbac.authorization.k8s.io",
                "v1",
                object["kind"].as_str().unwrap_or_default(),
            );
            let plural = if gvk.kind == "Role" {
                "roles"
            } else {
                "rolebindings"
            };
            let api: Api<DynamicObject> = Api::namespaced_with(
                self.client.clone(),
                &self.name,
                &ApiResource::from_gvk_with_plural(&gvk, plural),
            );
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            api.patch(
                &name,
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(&object),
            )
            .await
            .with_context(|| format!("binding {name} in {}", self.name))?;
        }
        Ok(())
    }

    /// Starts replica `replica` of the operator, watching this namespace, as its own
    /// ServiceAccount. With `leader_elect`, replicas of one test share a Lease of their own.
    /// Its admission webhooks are off (as in deploy/<operator>).
    pub async fn start_operator(
        &self,
        op: &Operator,
        replica: &str,
        leader_elect: bool,
    ) -> Result<OperatorProcess> {
        self.start_operator_with(op, replica, leader_elect, Webhooks::Off)
            .await
    }

    /// [`Self::start_operator`], serving its admission webhooks as `webhooks` says.
    pub async fn start_operator_with(
        &self,
        op: &Operator,
        replica: &str,
        leader_elect: bool,
        webhooks: Webhooks<'_>,
    ) -> Result<OperatorProcess> {
        self.start_operator_configured(op, replica, leader_elect, webhooks, "", &[])
            .await
    }

    /// [`Self::start_operator_with`], its config file's `operator:` section also holding
    /// `operator_yaml` (lines indented by two spaces, e.g. `  prometheus:\n    url: …\n`), and
    /// `args` added to its command line (one naming `--metrics-bind-address` replaces the
    /// default, a free loopback port).
    pub async fn start_operator_configured(
        &self,
        op: &Operator,
        replica: &str,
        leader_elect: bool,
        webhooks: Webhooks<'_>,
        operator_yaml: &str,
        args: &[&str],
    ) -> Result<OperatorProcess> {
        let installed = installed(op)?;
        let dir = work_dir().join(&self.name);
        std::fs::create_dir_all(&dir)?;
        let kubeconfig = dir.join(format!("{}.kubeconfig", op.binary));
        std::fs::write(
            &kubeconfig,
            self.kubeconfig_as(&installed.home, &installed.account)
                .await?,
        )?;
        // The shipped config file, with a resync short enough for a test and a Lease of this
        // test's own (tests run operators side by side in one home namespace).
        let config = dir.join(format!("{}-config.yaml", op.binary));
        let lease = format!("{}-{}", op.binary, self.name);
        let mut config_text = installed
            .config
            .replace("reconcileInterval: \"30s\"", "reconcileInterval: \"5s\"")
            .replace(
                &format!("id: \"{}-leader\"", op.binary),
                &format!("id: \"{lease}\""),
            );
        config_text =
            config_text.replacen("operator:\n", &format!("operator:\n{operator_yaml}"), 1);
        if let Webhooks::OwnCertificate(_) = webhooks {
            // The API server calls it on 127.0.0.1 (a URL), not through its Service.
            config_text = config_text.replacen(
                "operator:\n",
                "operator:\n  webhook:\n    hosts: [\"127.0.0.1\"]\n",
                1,
            );
        }
        std::fs::write(&config, config_text)?;
        let log = dir.join(format!("{}-{replica}.log", op.binary));
        let file = std::fs::File::create(&log)?;
        let launch = Launch::of(op.binary, || binary(op), &work_dir())?;
        let mut command = launch.command(op.binary);
        command
            .env("KUBECONFIG", launch.path(&kubeconfig)?)
            .env("WATCH_NAMESPACE", &self.name)
            .env("POD_NAMESPACE", &installed.home)
            .env("POD_NAME", replica)
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(launch.path(&config)?)
            .args(["--health-probe-bind-address", "0"])
            .args(args);
        // /metrics on a free loopback port, unless `args` says where: a test may scrape it.
        let metrics = match args
            .iter()
            .position(|a| a.starts_with("--metrics-bind-address"))
        {
            Some(i) => args[i]
                .split_once('=')
                .map(|(_, v)| v)
                .or_else(|| args.get(i + 1).copied())
                .and_then(|v| v.parse().ok()),
            None => {
                let address = crate::admission::free_address()?;
                command.arg(format!("--metrics-bind-address={address}"));
                Some(address)
            }
        };
        command
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file));
        match webhooks {
            Webhooks::Files(address, certs) => command
                .arg(format!("--webhook-bind-address={address}"))
                .arg("--webhook-cert-dir")
                .arg(launch.path(certs)?),
            Webhooks::OwnCertificate(address) => {
                command.arg(format!("--webhook-bind-address={address}"))
            }
            Webhooks::Off => command.arg("--webhook-bind-address=0"),
        };
        if leader_elect {
            command.arg("--leader-elect");
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", op.binary))?;
        Ok(OperatorProcess {
            child: Some(child),
            log,
            lease,
            home: installed.home,
            metrics,
        })
    }

    /// Another replica holds this test's Lease of `op` for an hour: a replica started with
    /// leader election stands by, its caches filled, reconciling nothing.
    pub async fn hold_lease(&self, op: &Operator, holder: &str) -> Result<()> {
        let home = installed(op)?.home;
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let lease = Lease {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("{}-{}", op.binary, self.name)),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(3600),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                ..LeaseSpec::default()
            }),
        };
        Api::<Lease>::namespaced(self.client.clone(), &home)
            .create(&PostParams::default(), &lease)
            .await
            .with_context(|| format!("holding the Lease of {} in {home}", op.binary))?;
        Ok(())
    }

    /// A client authenticated as ServiceAccount `home/account` (a TokenRequest token): what
    /// that account's pods may do, checked by the API server's RBAC.
    pub async fn client_as(&self, home: &str, account: &str) -> Result<kube::Client> {
        let kubeconfig: kube::config::Kubeconfig =
            serde_yaml::from_str(&self.kubeconfig_as(home, account).await?)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    async fn kubeconfig_as(&self, home: &str, account: &str) -> Result<String> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), home);
        let token = accounts
            .create_token_request(account, &PostParams::default(), &TokenRequest::default())
            .await
            .with_context(|| format!("a token for {home}/{account}"))?
            .status
            .map(|s| s.token)
            .context("the TokenRequest returned no token")?;
        let path = std::env::var("KUBECONFIG").context("KUBECONFIG names the admin kubeconfig")?;
        let admin = kube::config::Kubeconfig::read_from(&path)?;
        let context = admin
            .contexts
            .iter()
            .find(|c| Some(&c.name) == admin.current_context.as_ref())
            .or(admin.contexts.first())
            .and_then(|c| c.context.as_ref())
            .context("the admin kubeconfig has no context")?;
        let cluster = admin
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .and_then(|c| c.cluster.as_ref())
            .context("the admin kubeconfig's cluster")?;
        let server = cluster.server.clone().unwrap_or_default();
        let ca = match (
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        ) {
            (Some(data), _) => format!("certificate-authority-data: {data}"),
            (None, Some(file)) => format!("certificate-authority: {file}"),
            (None, None) => "insecure-skip-tls-verify: true".into(),
        };
        Ok(format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: e2e, cluster: {{server: \"{server}\", {ca}}}}}]\nusers: [{{name: {account}, user: {{token: \"{token}\"}}}}]\ncontexts: [{{name: e2e, context: {{cluster: e2e, user: {account}, namespace: {}}}}}]\ncurrent-context: e2e\n",
            self.name
        ))
    }
}

/// A running operator replica; killed when dropped.
#[derive(Debug)]
pub struct OperatorProcess {
    child: Option<Child>,
    pub log: PathBuf,
    /// The Lease its replicas share.
    pub lease: String,
    /// The namespace of the Lease.
    pub home: String,
    /// Where it serves /metrics (plain HTTP out of a pod), if it does.
    pub metrics: Option<std::net::SocketAddr>,
}

impl OperatorProcess {
    /// Its peak resident memory so far, in KiB (`VmHWM`), where /proc tells.
    pub fn peak_memory_kib(&self) -> Option<u64> {
        let pid = program_pid(self.child.as_ref()?.id());
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// SIGKILL: a crash, nothing released (a sandbox takes its program with it).
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then waits (`limit` at most) for a clean exit.
    pub async fn terminate(&mut self, limit: Duration) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // To the operator itself: a sandbox does not pass signals on.
        Command::new("kill")
            .args(["-TERM", &program_pid(child.id()).to_string()])
            .status()?;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("{} exited with {status} after SIGTERM", self.log.display());
                }
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                child.kill()?;
                bail!("still running {limit:?} after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Lines of its log where the API server denied it something by RBAC.
    pub fn rbac_denials(&self) -> Result<Vec<String>> {
        Ok(std::fs::read_to_string(&self.log)?
            .lines()
            .filter(|l| l.contains("system:serviceaccount:") && l.contains(" cannot "))
            .map(String::from)
            .collect())
    }

    /// Fails with the denials, if the log has any.
    pub fn assert_no_rbac_denials(&self) -> Result<()> {
        let denials = self.rbac_denials()?;
        if !denials.is_empty() {
            bail!(
                "{} was denied by RBAC {} times; first: {}",
                self.log.display(),
                denials.len(),
                denials[0]
            );
        }
        Ok(())
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
