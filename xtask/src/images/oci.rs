//! An OCI image of one layer, written as an OCI image layout (a folder skopeo, umoci and
//! crane read) and as one tar file that is both an OCI layout archive and a `docker save`
//! archive (`docker load`, `kind load image-archive`, `skopeo copy docker-archive:…`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::tar::Archive;

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Uncompressed: the layer's digest is its diff ID, and no compressor's version can change
/// it. `skopeo copy --dest-compress` compresses on the way to a registry.
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A content-addressed blob.
pub struct Blob {
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Blob {
    fn json(media_type: &'static str, value: &Value) -> Result<Self> {
        Ok(Self {
            media_type,
            bytes: serde_json::to_vec(value)?,
        })
    }

    pub fn digest(&self) -> String {
        format!("sha256:{:x}", Sha256::digest(&self.bytes))
    }

    fn path(&self) -> String {
        format!("blobs/sha256/{}", &self.digest()["sha256:".len()..])
    }

    fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest(), "size": self.bytes.len()})
    }
}

/// How the image runs, and what it says of itself.
pub struct RunConfig<'a> {
    pub entrypoint: String,
    pub user: u32,
    pub env: Vec<String>,
    pub labels: &'a BTreeMap<String, String>,
    /// RFC 3339, from `SOURCE_DATE_EPOCH`.
    pub created: &'a str,
}

/// A built image: its blobs and the name it is tagged with.
pub struct Image {
    pub reference: String,
    pub tag: String,
    pub layer: Blob,
    pub config: Blob,
    pub manifest: Blob,
}

impl Image {
    pub fn build(reference: &str, tag: &str, layer: Vec<u8>, run: &RunConfig) -> Result<Self> {
        let layer = Blob {
            media_type: LAYER,
            bytes: layer,
        };
        let config = Blob::json(
            CONFIG,
            &json!({
                "architecture": "amd64",
                "os": "linux",
                "created": run.created,
                "config": {
                    "User": format!("{0}:{0}", run.user),
                    "Entrypoint": [run.entrypoint],
                    "Env": run.env,
                    "WorkingDir": "/",
                    "Labels": run.labels,
                },
                "rootfs": {"type": "layers", "diff_ids": [layer.digest()]},
                "history": [{"created": run.created, "created_by": "cargo xtask images"}],
            }),
        )?;
        let manifest = Blob::json(
            MANIFEST,
            &json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": config.descriptor(),
                "layers": [layer.descriptor()],
                "annotations": run.labels,
            }),
        )?;
        Ok(Self {
            reference: reference.to_string(),
            tag: tag.to_string(),
            layer,
            config,
            manifest,
        })
    }

    /// The layout's files: `oci-layout`, `index.json` (the manifest tagged `tag`, the full
    /// reference for containerd), the blobs, and docker's `manifest.json`.
    fn layout(&self) -> Result<Archive> {
        let mut index_entry = self.manifest.descriptor();
        index_entry["annotations"] = json!({
            "org.opencontainers.image.ref.name": self.tag,
            "io.containerd.image.name": self.reference,
        });
        let mut files = Archive::default();
        files.file(
            "oci-layout",
            0o644,
            serde_json::to_vec(&json!({"imageLayoutVersion": "1.0.0"}))?,
        );
        files.file(
            "index.json",
            0o644,
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [index_entry],
            }))?,
        );
        files.file(
            "manifest.json",
            0o644,
            serde_json::to_vec(&json!([{
                "Config": self.config.path(),
                "RepoTags": [self.reference],
                "Layers": [self.layer.path()],
            }]))?,
        );
        for blob in [&self.layer, &self.config, &self.manifest] {
            files.file(&blob.path(), 0o644, blob.bytes.clone());
        }
        Ok(files)
    }

    /// Writes the layout into `dir` (emptied first) and the archive to `archive`.
    pub fn write(&self, dir: &Path, archive: &Path, mtime: u64) -> Result<()> {
        let layout = self.layout()?;
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        for (path, entry) in layout.paths() {
            if let super::tar::Entry::File { data, .. } = entry {
                let file = dir.join(path);
                std::fs::create_dir_all(file.parent().unwrap_or(dir))?;
                std::fs::write(file, data)?;
            }
        }
        std::fs::write(archive, layout.to_bytes(mtime)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(layer: &[u8]) -> Image {
        let labels = BTreeMap::from([("org.opencontainers.image.title".into(), "op".into())]);
        let run = RunConfig {
            entrypoint: "/usr/local/bin/op".into(),
            user: 65532,
            env: vec!["PATH=/usr/local/bin".into()],
            labels: &labels,
            created: "2026-01-01T00:00:00Z",
        };
        Image::build("payments-engine/op:0.1.0", "0.1.0", layer.to_vec(), &run).unwrap()
    }

    #[test]
    fn the_manifest_names_its_config_and_layer_by_digest() {
        let image = image(b"layer");
        let manifest: Value = serde_json::from_slice(&image.manifest.bytes).unwrap();
        assert_eq!(manifest["config"]["digest"], image.config.digest());
        assert_eq!(manifest["layers"][0]["digest"], image.layer.digest());
        let config: Value = serde_json::from_slice(&image.config.bytes).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], image.layer.digest());
        assert_eq!(config["config"]["User"], "65532:65532");
    }

    #[test]
    fn the_same_layer_gives_the_same_digest_and_another_layer_another() {
        assert_eq!(image(b"a").manifest.digest(), image(b"a").manifest.digest());
        assert_ne!(image(b"a").manifest.digest(), image(b"b").manifest.digest());
    }

    #[test]
    fn the_archive_is_both_an_oci_layout_and_a_docker_archive() {
        let image = image(b"layer");
        let layout = image.layout().unwrap();
        let paths: Vec<_> = layout.paths().map(|(p, _)| p.clone()).collect();
        for path in ["oci-layout", "index.json", "manifest.json"] {
            assert!(paths.contains(&path.to_string()), "{path} missing");
        }
        assert!(paths.contains(&format!("blobs/sha256/{}", &image.layer.digest()[7..])));
    }
}
