//! What an operator image holds: the binary, exactly the shared libraries it loads (taken
//! from the Debian packages installed here, named with their versions), CA certificates, a
//! user 65532, an empty `/tmp`, the packages' copyright files and the SBOM. Nothing else: no
//! shell, no package manager.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::output;
use super::tar::Archive;

/// Where the binary stands in the image (the image's entrypoint).
pub const BIN_DIR: &str = "usr/local/bin";
/// The bundle every TLS client in the image reads (`SSL_CERT_FILE`).
pub const CA_BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";
/// The user the image runs as, as deploy/ and the restricted pod security standard expect.
pub use e2e::image::USER;

/// A Debian package whose files are in the image.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DebianPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
}

/// The image's files and the Debian packages they came from.
pub struct RootFs {
    pub files: Archive,
    pub packages: Vec<DebianPackage>,
}

/// The shared libraries `binary` loads, as the dynamic loader finds them (`ldd`): the path
/// the loader looks in, which is where they stand in the image too.
pub fn shared_libraries(binary: &Path) -> Result<Vec<String>> {
    let listing = output(
        Command::new("ldd").arg(binary),
        &format!("ldd {}", binary.display()),
    )?;
    let mut libraries: Vec<String> = listing
        .lines()
        .filter_map(|line| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or
            // `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has no file.
            let path = line.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| path.to_string())
        })
        .collect();
    libraries.sort();
    libraries.dedup();
    Ok(libraries)
}

/// The installed Debian package that owns `path` (dpkg records the path as the package
/// ships it, which on a merged-/usr system may differ from the one the loader names).
fn owner(path: &str) -> Result<DebianPackage> {
    let real = std::fs::canonicalize(path)?;
    let real = real.to_string_lossy();
    let candidates = [
        path.to_string(),
        real.to_string(),
        real.trim_start_matches("/usr").to_string(),
    ];
    for candidate in candidates {
        let Ok(listing) = output(Command::new("dpkg").args(["-S", &candidate]), "dpkg -S") else {
            continue;
        };
        let Some(package) = listing.lines().next().and_then(|l| l.split(':').next()) else {
            continue;
        };
        return installed(package);
    }
    bail!("no installed Debian package owns {path}: the image takes only files Debian ships")
}

/// An installed Debian package, with the version and architecture dpkg has.
pub fn installed(name: &str) -> Result<DebianPackage> {
    let fields = output(
        Command::new("dpkg-query").args(["-W", "-f", "${Version} ${Architecture}", name]),
        &format!("dpkg-query {name}"),
    )?;
    let (version, arch) = fields
        .split_once(' ')
        .with_context(|| format!("dpkg-query {name}: {fields}"))?;
    Ok(DebianPackage {
        name: name.to_string(),
        version: version.to_string(),
        arch: arch.to_string(),
    })
}

/// The CA bundle made from the `ca-certificates` package's certificates, in name order (the
/// bundle `update-ca-certificates` writes is generated, so it is not a package's file).
fn ca_bundle() -> Result<Vec<u8>> {
    let dir = Path::new("/usr/share/ca-certificates/mozilla");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: install Debian's ca-certificates", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "crt"))
        .collect();
    names.sort();
    let mut bundle = Vec::new();
    for name in names {
        bundle.extend(std::fs::read(name)?);
        if bundle.last() != Some(&b'\n') {
            bundle.push(b'\n');
        }
    }
    Ok(bundle)
}

/// The root filesystem of the image of `binary` (named `name` in the image).
pub fn assemble(name: &str, binary: &Path) -> Result<RootFs> {
    let mut files = Archive::default();
    let mut packages = vec![installed("ca-certificates")?];
    files.file(
        &format!("{BIN_DIR}/{name}"),
        0o755,
        std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?,
    );
    for library in shared_libraries(binary)? {
        packages.push(owner(&library)?);
        // The file itself, under the name the loader asks for (not a link to a versioned one).
        files.file(
            library.trim_start_matches('/'),
            0o755,
            std::fs::read(&library)?,
        );
    }
    packages.sort();
    packages.dedup();
    for package in &packages {
        let copyright = format!("/usr/share/doc/{}/copyright", package.name);
        if let Ok(text) = std::fs::read(&copyright) {
            files.file(copyright.trim_start_matches('/'), 0o644, text);
        }
    }
    files.file(CA_BUNDLE, 0o644, ca_bundle()?);
    files.file(
        "etc/passwd",
        0o644,
        format!("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{USER}:{USER}:nonroot:/home/nonroot:/sbin/nologin\n").into_bytes(),
    );
    files.file(
        "etc/group",
        0o644,
        format!("root:x:0:\nnonroot:x:{USER}:\n").into_bytes(),
    );
    files.dir("home/nonroot", 0o700, USER);
    files.dir("tmp", 0o1777, 0);
    // Where a runtime mounts them (empty, as in any image).
    files.dir("proc", 0o555, 0);
    files.dir("dev", 0o755, 0);
    Ok(RootFs { files, packages })
}
