//! The image's software bill of materials, as SPDX 2.3 JSON: the binary's crates (what
//! Cargo.lock resolves for its package, normal dependencies only: build scripts and dev
//! dependencies are not in the binary) and the Debian packages whose files the image holds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::rootfs::DebianPackage;

/// A crate compiled into a binary.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crate {
    pub name: String,
    pub version: String,
    pub license: String,
    /// From crates.io (else the workspace's own).
    pub registry: bool,
}

/// Every crate the binary of `package` is built from: the package and what it reaches
/// through normal dependencies, as `cargo metadata` resolves them from Cargo.lock.
pub fn crates_of(root: &Path, package: &str) -> Result<Vec<Crate>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let metadata: Value = serde_json::from_slice(&out.stdout)?;
    reachable(&metadata, package)
}

fn reachable(metadata: &Value, package: &str) -> Result<Vec<Crate>> {
    let packages: BTreeMap<&str, &Value> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let nodes: BTreeMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let start = packages
        .iter()
        .find(|(_, p)| p["name"] == package && p["source"].is_null())
        .map(|(id, _)| *id)
        .with_context(|| format!("no workspace package {package}"))?;
    let mut seen = BTreeSet::from([start]);
    let mut queue = vec![start];
    while let Some(id) = queue.pop() {
        let deps = nodes.get(id).and_then(|n| n["deps"].as_array());
        for dep in deps.into_iter().flatten() {
            let normal = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null());
            if let Some(dep_id) = dep["pkg"].as_str()
                && normal
                && seen.insert(dep_id)
            {
                queue.push(dep_id);
            }
        }
    }
    let mut crates: Vec<Crate> = seen
        .into_iter()
        .filter_map(|id| packages.get(id))
        .map(|p| Crate {
            name: p["name"].as_str().unwrap_or_default().to_string(),
            version: p["version"].as_str().unwrap_or_default().to_string(),
            license: p["license"].as_str().unwrap_or("NOASSERTION").to_string(),
            registry: !p["source"].is_null(),
        })
        .collect();
    crates.sort();
    Ok(crates)
}

/// What the SBOM describes.
pub struct Subject<'a> {
    pub image: &'a str,
    pub version: &'a str,
    pub revision: &'a str,
    /// RFC 3339, from `SOURCE_DATE_EPOCH`: the document is the same on every run.
    pub created: &'a str,
}

/// An SPDX ID: letters, digits, `.` and `-` only.
fn spdx_id(kind: &str, name: &str, version: &str) -> String {
    let clean = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>()
    };
    format!("SPDXRef-{kind}-{}-{}", clean(name), clean(version))
}

pub fn document(subject: &Subject, crates: &[Crate], debian: &[DebianPackage]) -> Value {
    let root = spdx_id("Image", subject.image, subject.version);
    let mut packages = vec![json!({
        "SPDXID": root,
        "name": subject.image,
        "versionInfo": subject.version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": root,
    })];
    for c in crates {
        let id = spdx_id("Crate", &c.name, &c.version);
        let mut package = json!({
            "SPDXID": id,
            "name": c.name,
            "versionInfo": c.version,
            "downloadLocation": if c.registry { format!("https://crates.io/api/v1/crates/{}/{}/download", c.name, c.version) } else { "NOASSERTION".to_string() },
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": c.license,
        });
        if c.registry {
            package["externalRefs"] = json!([{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": format!("pkg:cargo/{}@{}", c.name, c.version),
            }]);
        }
        packages.push(package);
        relationships.push(json!({"spdxElementId": root, "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
    }
    for d in debian {
        let id = spdx_id("Deb", &d.name, &d.version);
        packages.push(json!({
            "SPDXID": id,
            "name": d.name,
            "versionInfo": d.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "comment": format!("license and copyright: /usr/share/doc/{}/copyright in the image", d.name),
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": format!("pkg:deb/debian/{}@{}?arch={}", d.name, d.version, d.arch),
            }],
        }));
        relationships.push(json!({"spdxElementId": root, "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}-{}", subject.image, subject.version),
        "documentNamespace": format!("urn:payments-engine:sbom:{}:{}:{}", subject.image, subject.version, subject.revision),
        "creationInfo": {"created": subject.created, "creators": ["Tool: cargo-xtask-images"]},
        "packages": packages,
        "relationships": relationships,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, deps: &[(&str, Value)]) -> Value {
        json!({"id": id, "deps": deps.iter().map(|(pkg, kind)| json!({"pkg": pkg, "dep_kinds": [{"kind": kind}]})).collect::<Vec<_>>()})
    }

    #[test]
    fn the_binary_s_crates_are_its_normal_dependencies_only() {
        let metadata = json!({
            "packages": [
                {"id": "op", "name": "op", "version": "0.1.0", "license": "Apache-2.0", "source": null},
                {"id": "kube", "name": "kube", "version": "5.0.0", "license": "Apache-2.0", "source": "registry"},
                {"id": "cc", "name": "cc", "version": "1.0.0", "license": "MIT", "source": "registry"},
                {"id": "proptest", "name": "proptest", "version": "1.0.0", "license": "MIT", "source": "registry"},
            ],
            "resolve": {"nodes": [
                node("op", &[("kube", Value::Null), ("proptest", json!("dev"))]),
                node("kube", &[("cc", json!("build"))]),
                node("cc", &[]), node("proptest", &[]),
            ]},
        });
        let names: Vec<_> = reachable(&metadata, "op")
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["kube", "op"]);
    }

    #[test]
    fn every_package_is_described_with_its_purl() {
        let subject = Subject {
            image: "trading-operator",
            version: "0.1.0",
            revision: "abc",
            created: "2026-01-01T00:00:00Z",
        };
        let crates = [Crate {
            name: "kube".into(),
            version: "5.0.0".into(),
            license: "Apache-2.0".into(),
            registry: true,
        }];
        let debian = [DebianPackage {
            name: "libc6".into(),
            version: "2.36-9+deb12u14".into(),
            arch: "amd64".into(),
        }];
        let doc = document(&subject, &crates, &debian);
        let purls: Vec<_> = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["externalRefs"][0]["referenceLocator"].as_str())
            .collect();
        assert_eq!(
            purls,
            [
                "pkg:cargo/kube@5.0.0",
                "pkg:deb/debian/libc6@2.36-9+deb12u14?arch=amd64"
            ]
        );
        assert_eq!(doc["relationships"].as_array().unwrap().len(), 3);
        assert!(doc["packages"].as_array().unwrap().iter().all(|p| {
            p["SPDXID"]
                .as_str()
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
        }));
    }
}
