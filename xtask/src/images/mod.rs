//! `cargo xtask images [--registry R] [--tag T]`: one OCI image per operator, built without a
//! container engine (as ko and jib do): the release binary, the shared libraries it loads from
//! Debian's packages, CA certificates and user 65532 in one layer; OCI labels; an SPDX SBOM in
//! the image and beside it. The same commit gives the same digests: entries sorted, one mtime
//! (`SOURCE_DATE_EPOCH`, else the commit's time), the build's paths remapped.
//!
//! Written to `target/images/`: `<binary>/` (an OCI image layout), `<binary>.tar` (an OCI
//! archive that `docker load` and `kind load image-archive` also read), `<binary>.spdx.json`,
//! and `digests.txt` (`<registry>/<binary>:<tag>@sha256:…`, one line per image). Pushing is
//! the user's step: `skopeo copy oci:target/images/<binary>:<tag> docker://<registry>/…`.
//!
//! `cargo xtask images --verify` proves them by running them: read by skopeo, unpacked by
//! umoci, run from the unpacked root filesystem, read-only, as user 65532 (see `verify`).

mod oci;
mod rootfs;
mod sbom;
pub mod tar;
pub mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace's version: every operator's image is tagged with it unless `--tag` says.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where the images go unless `--registry` says: the name deploy/ pulls.
pub const REGISTRY: &str = "payments-engine";
/// The Cargo profile images are built with (`Cargo.toml`: release, symbols stripped), in a
/// folder of its own so the remapped build never invalidates `target/release`.
const PROFILE: &str = "image";

/// Where images are written and read.
pub fn images_dir(root: &Path) -> PathBuf {
    crate::target_dir(root).join("images")
}

/// The options of `cargo xtask images`.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub registry: String,
    pub tag: String,
}

impl Options {
    pub fn parse(args: &[&str]) -> Result<Self> {
        let mut options = Self {
            registry: REGISTRY.into(),
            tag: VERSION.into(),
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .with_context(|| format!("{flag} takes a value"))?;
            match *flag {
                "--registry" => options.registry = value.trim_end_matches('/').to_string(),
                "--tag" => options.tag = (*value).to_string(),
                other => bail!("unknown flag {other}: cargo xtask images [--registry R] [--tag T]"),
            }
        }
        Ok(options)
    }
}

/// What `command` printed; an error with what it said if it failed or could not start
/// (the tools come from Debian: dpkg, skopeo, umoci, bubblewrap, util-linux's setpriv).
fn output(command: &mut Command, what: &str) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("running {what}: is its Debian package installed?"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .current_dir(root)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A git remote as an image may name its source: a network address without credentials
/// (`https://token@host/…` loses the token); a local path names nothing a user can open.
fn public_source(remote: &str) -> Option<String> {
    if let Some((scheme, rest)) = remote.split_once("://") {
        if !matches!(scheme, "https" | "http" | "ssh" | "git") {
            return None;
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        return Some(format!("{scheme}://{host}/{path}"));
    }
    // scp-like `git@host:org/repo.git`.
    let (user_host, path) = remote.split_once(':')?;
    let host = user_host
        .rsplit_once('@')
        .map_or(user_host, |(_, host)| host);
    (!host.is_empty() && !host.contains('/') && !path.is_empty())
        .then(|| format!("https://{host}/{}", path.trim_start_matches('/')))
}

/// What every image of one build says of its source.
struct Provenance {
    revision: String,
    source: Option<String>,
    epoch: u64,
    created: String,
}

impl Provenance {
    fn of(root: &Path) -> Result<Self> {
        let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(value) => value
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={value} is not seconds"))?,
            Err(_) => git(root, &["log", "-1", "--format=%ct"])
                .and_then(|s| s.parse().ok())
                .context("no SOURCE_DATE_EPOCH and no git commit to take the time from")?,
        };
        let created = k8s_openapi::jiff::Timestamp::from_second(i64::try_from(epoch)?)?
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        Ok(Self {
            revision: git(root, &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
            source: git(root, &["remote", "get-url", "origin"]).and_then(|r| public_source(&r)),
            epoch,
            created,
        })
    }

    fn labels(&self, title: &str, tag: &str) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        let mut label = |k: &str, v: &str| {
            labels.insert(format!("org.opencontainers.image.{k}"), v.to_string());
        };
        label("title", title);
        label("version", tag);
        label("revision", &self.revision);
        label("licenses", env!("CARGO_PKG_LICENSE"));
        label("created", &self.created);
        label(
            "description",
            &format!("{title}: a payments-engine Kubernetes operator"),
        );
        if let Some(source) = &self.source {
            label("source", source);
        }
        labels
    }
}

/// Builds the binaries of `packages` as images ship them; returns the folder they are in.
pub fn build_binaries(root: &Path, packages: &[&str]) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let home = std::env::var("CARGO_HOME").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"),
        PathBuf::from,
    );
    // The checkout's and Cargo's folders are not part of what a binary is.
    let remap = format!(
        "--remap-path-prefix={}=/src --remap-path-prefix={}=/cargo",
        root.display(),
        home.display()
    );
    let status = Command::new(cargo)
        .current_dir(root)
        .env("RUSTFLAGS", remap)
        .args(["build", "--locked", "--profile", PROFILE])
        .args(packages.iter().flat_map(|p| ["-p", p]))
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building {} failed ({status})", packages.join(", "));
    }
    Ok(crate::target_dir(root).join(PROFILE))
}

pub fn build(root: &Path, options: &Options) -> Result<()> {
    let provenance = Provenance::of(root)?;
    let operators: Vec<&str> = crate::OPERATORS.iter().map(|o| o.package()).collect();
    let binaries = build_binaries(root, &operators)?;
    let out = images_dir(root);
    std::fs::create_dir_all(&out)?;
    let mut digests = String::new();
    for operator in crate::OPERATORS {
        let name = operator.binary.identity.manager;
        let reference = format!("{}/{name}:{}", options.registry, options.tag);
        let mut image = rootfs::assemble(name, &binaries.join(name))?;
        let crates = sbom::crates_of(root, operator.package())?;
        let subject = sbom::Subject {
            image: name,
            version: &options.tag,
            revision: &provenance.revision,
            created: &provenance.created,
        };
        let sbom = serde_json::to_vec_pretty(&sbom::document(&subject, &crates, &image.packages))?;
        image.files.file(
            &format!("usr/share/doc/{name}/sbom.spdx.json"),
            0o644,
            sbom.clone(),
        );
        let labels = provenance.labels(name, &options.tag);
        let run = oci::RunConfig {
            entrypoint: format!("/{}/{name}", rootfs::BIN_DIR),
            user: rootfs::USER,
            env: vec![
                format!("PATH=/{}", rootfs::BIN_DIR),
                format!("SSL_CERT_FILE=/{}", rootfs::CA_BUNDLE),
            ],
            labels: &labels,
            created: &provenance.created,
        };
        let built = oci::Image::build(
            &reference,
            &options.tag,
            image.files.to_bytes(provenance.epoch)?,
            &run,
        )?;
        built.write(
            &out.join(name),
            &out.join(format!("{name}.tar")),
            provenance.epoch,
        )?;
        std::fs::write(out.join(format!("{name}.spdx.json")), sbom)?;
        let digest = built.manifest.digest();
        println!(
            "{reference}@{digest}  ({} MiB, {} crates, Debian: {})",
            built.layer.bytes.len() / (1 << 20),
            crates.len(),
            image
                .packages
                .iter()
                .map(|p| format!("{} {}", p.name, p.version))
                .collect::<Vec<_>>()
                .join(", ")
        );
        digests.push_str(&format!("{reference}@{digest}\n"));
    }
    std::fs::write(out.join("digests.txt"), digests)?;
    println!("wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_go_to_the_product_s_registry_with_the_workspace_version_unless_told() {
        assert_eq!(
            Options::parse(&[]).unwrap(),
            Options {
                registry: REGISTRY.into(),
                tag: VERSION.into()
            }
        );
        let told = Options::parse(&["--registry", "ghcr.io/acme/", "--tag", "rc1"]).unwrap();
        assert_eq!(told.registry, "ghcr.io/acme");
        assert_eq!(told.tag, "rc1");
        assert!(Options::parse(&["--tag"]).is_err());
        assert!(Options::parse(&["--push", "x"]).is_err());
    }

    #[test]
    fn an_image_names_a_network_source_without_credentials_and_no_local_path() {
        assert_eq!(
            public_source("https://x-token:secret@github.com/acme/ops.git").as_deref(),
            Some("https://github.com/acme/ops.git")
        );
        assert_eq!(
            public_source("git@github.com:acme/ops.git").as_deref(),
            Some("https://github.com/acme/ops.git")
        );
        assert_eq!(public_source("/work/main"), None);
        assert_eq!(public_source("../main"), None);
        assert_eq!(public_source("file:///work/main"), None);
    }

    /// The Dockerfile, for teams with an engine, builds every operator the workspace ships,
    /// laid out as these images are.
    #[test]
    fn the_dockerfile_builds_every_operator_as_images_does() {
        let dockerfile =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile"))
                .unwrap();
        for operator in crate::OPERATORS {
            let name = operator.binary.identity.manager;
            for line in [
                format!("-p {}", operator.package()),
                format!("FROM runtime AS {name}\n"),
                format!("COPY --from=build /out/{name} /{}/\n", rootfs::BIN_DIR),
                format!("ENTRYPOINT [\"/{}/{name}\"]", rootfs::BIN_DIR),
                format!("target/image/{name}"),
                format!("docker build --target {name} "),
            ] {
                assert!(dockerfile.contains(&line), "the Dockerfile lacks {line:?}");
            }
        }
    }
}
