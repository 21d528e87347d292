//! `cargo xtask images --verify`: each image `cargo xtask images` wrote is read by skopeo (as
//! an OCI layout and as a docker archive), unpacked by umoci, and run from the unpacked root
//! filesystem alone: read-only, as user 65532, with nothing of the host's files
//! (`e2e::image::sandbox`, the way the e2e suite runs them).
//! `--version` must name the binary and the version it is tagged with.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use e2e::image::{USER, sandbox};

use super::output;

/// Where each image is unpacked, `<binary>/rootfs` (the e2e suite's `E2E_IMAGES`).
const UNPACKED: &str = "unpacked";

pub fn unpacked_dir(root: &Path) -> PathBuf {
    super::images_dir(root).join(UNPACKED)
}

/// The digest `digests.txt` records for `name`.
fn recorded_digest(images: &Path, name: &str) -> Result<String> {
    let digests = std::fs::read_to_string(images.join("digests.txt"))
        .context("no target/images/digests.txt: run cargo xtask images first")?;
    digests
        .lines()
        .find_map(|l| {
            let (reference, digest) = l.split_once('@')?;
            reference
                .rsplit_once('/')
                .is_some_and(|(_, image)| image.starts_with(&format!("{name}:")))
                .then(|| digest.to_string())
        })
        .with_context(|| format!("digests.txt has no {name}"))
}

/// Unpacks the image of `name` (tagged `tag`) into `bundle` with umoci; returns its rootfs.
fn unpack(images: &Path, name: &str, tag: &str, bundle: &Path) -> Result<PathBuf> {
    if bundle.exists() {
        std::fs::remove_dir_all(bundle)?;
    }
    output(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{tag}", images.join(name).display()))
            .arg(bundle),
        &format!("umoci unpack {name}"),
    )?;
    // umoci keeps a bundle to its owner (root here); the image's user must reach its rootfs.
    std::fs::set_permissions(bundle, std::fs::Permissions::from_mode(0o755))?;
    Ok(bundle.join("rootfs"))
}

fn check(images: &Path, name: &str) -> Result<String> {
    let digest = recorded_digest(images, name)?;
    let layout = images.join(name);
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    let tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .context("index.json names no tag")?
        .to_string();
    let inspected: Value = serde_json::from_str(&output(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{tag}", layout.display())),
        &format!("skopeo inspect oci:{name}"),
    )?)?;
    if inspected["Digest"] != digest.as_str() {
        bail!(
            "{name}: skopeo reads digest {} from the layout, digests.txt says {digest}",
            inspected["Digest"]
        );
    }
    if inspected["Labels"]["org.opencontainers.image.title"] != name {
        bail!("{name}: the image's title label is {}", inspected["Labels"]);
    }
    let archive: Value = serde_json::from_str(&output(
        Command::new("skopeo").arg("inspect").arg(format!(
            "docker-archive:{}",
            images.join(format!("{name}.tar")).display()
        )),
        &format!("skopeo inspect docker-archive:{name}.tar"),
    )?)?;
    if archive["Labels"] != inspected["Labels"] {
        bail!("{name}: the docker archive's labels differ from the layout's");
    }
    let rootfs = unpack(images, name, &tag, &images.join(UNPACKED).join(name))?;
    if rootfs.join("bin/sh").exists() || rootfs.join("usr/bin").exists() {
        bail!("{name}: the image holds more than the operator (a shell or /usr/bin)");
    }
    let version = output(
        sandbox(
            &rootfs,
            None,
            &format!("/{}/{name}", super::rootfs::BIN_DIR),
        )
        .arg("--version"),
        &format!("{name} --version, run from its image"),
    )?;
    let version = version.trim();
    if !version.contains(name) || !version.contains(super::VERSION) {
        bail!(
            "{name} --version says {version:?}: it should name {name} {}",
            super::VERSION
        );
    }
    Ok(format!(
        "{name}: {digest}; skopeo reads it; ran from its image as {USER}: {version}"
    ))
}

pub fn run(root: &Path) -> Result<()> {
    let images = super::images_dir(root);
    for operator in crate::OPERATORS {
        println!("{}", check(&images, operator.binary.identity.manager)?);
    }
    Ok(())
}
