//! The backup Job's work, as `payment-service-operator backup` runs it in the operator's own
//! image: against testkit with the seed converged, into a directory standing for the claim.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use payment_service::backup::{Export, export};

use crate::common::{NS, Payments, SEED, Setup, seed_sample, start};

fn claim(test: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ps-backup-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[tokio::test]
async fn the_cron_job_runs_the_operators_own_image() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;
    let cron = h
        .get("batch/v1", "cronjobs", &format!("{SEED}-backup"))
        .context("backup cronjob")?;
    let container = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    // Out of cluster (no Pod of its own) and with no backupImage: this release's image.
    assert_eq!(container["image"], payment_service::RELEASE_IMAGE);
    assert_eq!(container["args"][0], "backup");
    assert!(container.get("command").is_none());
    Ok(())
}

#[tokio::test]
async fn an_export_holds_the_service_as_written_and_its_children_and_retention_prunes_only_exports()
-> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;
    let to = claim("export")?;
    for old in ["20200101T020000Z", "20200102T020000Z.partial", "lost+found"] {
        std::fs::create_dir_all(to.join(old))?;
    }
    std::fs::write(to.join("README"), "kept")?;

    let run = Export {
        service: SEED.into(),
        namespace: Some(NS.into()),
        to: to.clone(),
        retention_days: 30,
        git_url: None,
        git_branch: None,
        git_credentials: PathBuf::new(),
    };
    let done = run.run(h.client()).await?;
    assert_eq!(
        done.removed,
        ["20200101T020000Z", "20200102T020000Z.partial"],
        "old exports and an unfinished one go"
    );
    assert!(to.join("lost+found").is_dir() && to.join("README").is_file());

    let service = std::fs::read_to_string(done.dir.join("paymentservice.yaml"))?;
    let service = operator_core::manifests::documents(&service)?;
    assert_eq!(service.len(), 1);
    assert_eq!(service[0]["kind"], "PaymentService");
    assert_eq!(service[0]["apiVersion"], "payments.io/v2");
    assert_eq!(service[0]["spec"]["version"], "1.5.0");
    assert!(service[0].get("status").is_none());
    for server_set in ["uid", "resourceVersion", "managedFields", "finalizers"] {
        assert!(
            service[0]["metadata"].get(server_set).is_none(),
            "{server_set}"
        );
    }

    let children = std::fs::read_to_string(done.dir.join("children.yaml"))?;
    let children = operator_core::manifests::documents(&children)?;
    assert_eq!(children.len(), done.children);
    let kinds: Vec<&str> = children.iter().filter_map(|c| c["kind"].as_str()).collect();
    for kind in [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceAccount",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert!(
        !std::fs::read_dir(&to)?
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(".partial")),
        "the export was renamed once complete"
    );
    std::fs::remove_dir_all(&to)?;
    Ok(())
}

#[tokio::test]
async fn a_missing_service_fails_the_run_and_writes_nothing() -> Result<()> {
    let h = start(Setup::default()).await?;
    let to = claim("missing")?;
    let failed = export(
        &h.client(),
        NS,
        "gone",
        &to,
        "2026-12-07T02:00:00Z".parse()?,
    )
    .await;
    let message = failed.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("PaymentService payments/gone"),
        "{message}"
    );
    assert_eq!(std::fs::read_dir(&to)?.count(), 0);
    std::fs::remove_dir_all(&to)?;
    Ok(())
}

/// A Git server on loopback: `git http-backend` (Git's own smart HTTP CGI) over a bare
/// repository, behind Basic authentication, as a Git host serves one.
struct GitServer {
    url: String,
    repository: PathBuf,
}

const GIT_USER: &str = "backup-bot";
const GIT_TOKEN: &str = "t0ken-never-logged";

impl GitServer {
    async fn start(root: &std::path::Path) -> Result<Self> {
        use base64::Engine as _;
        let repository = root.join("backups.git");
        git(root, &["init", "--quiet", "--bare", "backups.git"])?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/backups.git", listener.local_addr()?);
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{GIT_USER}:{GIT_TOKEN}"))
        );
        let project_root = root.to_path_buf();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (root, expected) = (project_root.clone(), expected.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &root, &expected).await;
                });
            }
        });
        Ok(Self { url, repository })
    }

    fn git(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["--git-dir", self.repository.to_str().unwrap_or_default()];
        all.extend_from_slice(args);
        git(&self.repository, &all)
    }
}

fn git(dir: &std::path::Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// One request: read it whole, answer 401 without the credentials, else run the CGI.
async fn serve(
    mut stream: tokio::net::TcpStream,
    root: &std::path::Path,
    expected: &str,
) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = Vec::new();
    let mut buffer = [0u8; 65536];
    let head_end = loop {
        let n = stream.read(&mut buffer).await?;
        anyhow::ensure!(n > 0, "closed mid-request");
        request.extend_from_slice(&buffer[..n]);
        if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_string();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (
        first.next().unwrap_or_default(),
        first.next().unwrap_or_default(),
    );
    let headers: std::collections::BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    while request.len() < head_end + length {
        let n = stream.read(&mut buffer).await?;
        anyhow::ensure!(n > 0, "closed mid-body");
        request.extend_from_slice(&buffer[..n]);
    }
    if headers.get("authorization").map(String::as_str) != Some(expected) {
        let answer = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        stream.write_all(answer.as_bytes()).await?;
        return Ok(());
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut cgi = tokio::process::Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", GIT_USER)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env(
            "CONTENT_TYPE",
            headers.get("content-type").cloned().unwrap_or_default(),
        )
        .env("CONTENT_LENGTH", length.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = cgi.stdin.take() {
        stdin
            .write_all(&request[head_end..head_end + length])
            .await?;
    }
    let output = cgi.wait_with_output().await?;
    let out = output.stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .context("a CGI answer without headers")?;
    let cgi_head = String::from_utf8_lossy(&out[..split.0]).to_string();
    let body = &out[split.0 + split.1..];
    let mut status = "200 OK".to_string();
    let mut answer = String::new();
    for line in cgi_head.lines() {
        match line.split_once(": ") {
            Some(("Status", s)) => status = s.to_string(),
            Some((k, v)) => answer.push_str(&format!("{k}: {v}\r\n")),
            None => {}
        }
    }
    let head = format!(
        "HTTP/1.1 {status}\r\n{answer}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    Ok(())
}

fn git_run(server: &GitServer, to: &std::path::Path, credentials: &std::path::Path) -> Export {
    Export {
        service: SEED.into(),
        namespace: Some(NS.into()),
        to: to.to_path_buf(),
        retention_days: 30,
        git_url: Some(server.url.clone()),
        git_branch: None,
        git_credentials: credentials.to_path_buf(),
    }
}

#[tokio::test]
async fn each_run_commits_the_kept_exports_to_the_services_branch_over_smart_http() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;
    let root = claim("git")?;
    let (to, credentials) = (root.join("claim"), root.join("credentials"));
    std::fs::create_dir_all(to.join("20200101T020000Z"))?;
    std::fs::write(to.join("20200101T020000Z/paymentservice.yaml"), "expired")?;
    std::fs::create_dir_all(&credentials)?;
    std::fs::write(credentials.join("username"), GIT_USER)?;
    std::fs::write(credentials.join("password"), format!("{GIT_TOKEN}\n"))?;
    let server = GitServer::start(&root).await?;
    let branch = format!("backups/{NS}/{SEED}");

    let first = git_run(&server, &to, &credentials).run(h.client()).await?;
    let first_commit = first.commit.clone().context("a commit")?;
    assert_eq!(server.git(&["rev-parse", &branch])?.trim(), first_commit);
    let export = first
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string());
    let export = export.unwrap_or_default();
    let tree = server.git(&["ls-tree", "-r", "--name-only", &branch])?;
    assert_eq!(
        tree.lines().collect::<Vec<_>>(),
        [
            format!("{export}/children.yaml"),
            format!("{export}/paymentservice.yaml")
        ],
        "the head holds what the claim keeps: the expired export is not in it"
    );
    let committed = server.git(&["show", &format!("{branch}:{export}/paymentservice.yaml")])?;
    assert_eq!(
        committed,
        std::fs::read_to_string(first.dir.join("paymentservice.yaml"))?
    );
    let message = server.git(&["log", "-1", "--format=%an <%ae>%n%s", &branch])?;
    assert!(
        message.starts_with("payment-service-operator <payment-service-operator@payments.io>\nBackup of PaymentService payments/payment-initiation-service at "),
        "{message}"
    );

    // A later run adds a commit on top: the history keeps every export.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = git_run(&server, &to, &credentials).run(h.client()).await?;
    let parent = server.git(&["rev-parse", &format!("{branch}^")])?;
    assert_eq!(parent.trim(), first_commit);
    assert_eq!(
        server
            .git(&["ls-tree", "-r", "--name-only", &branch])?
            .lines()
            .count(),
        4
    );
    assert_eq!(
        server.git(&["rev-parse", &branch])?.trim(),
        second.commit.unwrap_or_default()
    );
    // Git itself finds every object well formed and connected.
    server.git(&["fsck", "--strict", "--no-dangling"])?;
    std::fs::remove_dir_all(&root)?;
    Ok(())
}

#[tokio::test]
async fn refused_credentials_keep_the_export_and_say_so_without_the_password() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;
    let root = claim("git-denied")?;
    let (to, credentials) = (root.join("claim"), root.join("credentials"));
    std::fs::create_dir_all(&credentials)?;
    std::fs::write(credentials.join("username"), GIT_USER)?;
    std::fs::write(credentials.join("password"), "wrong-password")?;
    let server = GitServer::start(&root).await?;

    let refused = git_run(&server, &to, &credentials).run(h.client()).await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("not committed") && message.contains("refused the credentials (HTTP 401)"),
        "{message}"
    );
    assert!(!message.contains("wrong-password"));
    assert_eq!(
        std::fs::read_dir(&to)?.count(),
        1,
        "the export is on the claim"
    );
    assert!(
        server.git(&["for-each-ref"])?.is_empty(),
        "nothing was pushed"
    );

    std::fs::remove_file(credentials.join("password"))?;
    let missing = git_run(&server, &to, &credentials).run(h.client()).await;
    let message = missing.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("no password"), "{message}");
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
