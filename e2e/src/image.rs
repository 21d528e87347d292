//! Operators run from their images, without a container engine: `cargo xtask images --verify`
//! unpacks each image (umoci) into `target/images/unpacked/<binary>/rootfs`, and a process is
//! started in that root filesystem alone, read-only, as user 65532 with no capabilities, in
//! its own mount, PID, IPC and UTS namespaces (bubblewrap), on the host's network so it
//! reaches a loopback API server. What it sees is what a pod's container sees: the image, an
//! empty `/tmp`, and the files it is given (read-only under `/tmp/given`).
//!
//! The suite runs every operator this way when `E2E_IMAGES` names the unpacked images (as
//! `cargo xtask e2e` sets it); otherwise from the built binary in `target/debug/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

/// The user images run as (their config's `User`, deploy/'s `runAsUser` where set).
pub const USER: u32 = 65532;
/// Where the given host folder appears inside.
const GIVEN: &str = "/tmp/given";

/// `program` (a path inside the image) run in the image unpacked at `rootfs`, with the host
/// folder `given`, if any, read-only at `/tmp/given`. The user is dropped before the sandbox
/// is made, so nothing inside maps to root.
pub fn sandbox(rootfs: &Path, given: Option<&Path>, program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args([
            format!("--reuid={USER}"),
            format!("--regid={USER}"),
            "--clear-groups".into(),
            "--inh-caps=-all".into(),
            "bwrap".into(),
            "--unshare-user".into(),
            "--unshare-pid".into(),
            "--unshare-ipc".into(),
            "--unshare-uts".into(),
            "--uid".into(),
            USER.to_string(),
            "--gid".into(),
            USER.to_string(),
            "--die-with-parent".into(),
            "--ro-bind".into(),
        ])
        .arg(rootfs)
        .args(["/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    if let Some(given) = given {
        command.arg("--ro-bind").arg(given).arg(GIVEN);
    }
    command.args(["--", program]);
    command
}

/// What the operators of this run are, for figures the suite prints.
pub fn which_build() -> &'static str {
    if std::env::var_os("E2E_IMAGES").is_some() {
        "release build, run from its image"
    } else {
        "debug build"
    }
}

/// How the suite starts one operator binary.
#[derive(Debug)]
pub enum Launch {
    /// From `target/debug` (or `E2E_BIN_DIR`).
    Built(PathBuf),
    /// From its unpacked image, given the suite's work folder.
    Image { rootfs: PathBuf, work: PathBuf },
}

impl Launch {
    /// From the image of `binary` if `E2E_IMAGES` names the unpacked images, else `built`.
    pub fn of(binary: &str, built: impl FnOnce() -> Result<PathBuf>, work: &Path) -> Result<Self> {
        let Ok(images) = std::env::var("E2E_IMAGES") else {
            return Ok(Self::Built(built()?));
        };
        let rootfs = Path::new(&images).join(binary).join("rootfs");
        if !rootfs.join("usr/local/bin").join(binary).exists() {
            bail!(
                "E2E_IMAGES={images}: no unpacked image of {binary} (cargo xtask images && cargo xtask images --verify)"
            );
        }
        Ok(Self::Image {
            rootfs,
            work: work.to_path_buf(),
        })
    }

    /// Where the operator sees the host file `path`: itself, or inside the given folder.
    pub fn path(&self, path: &Path) -> Result<PathBuf> {
        match self {
            Self::Built(_) => Ok(path.to_path_buf()),
            Self::Image { work, .. } => match path.strip_prefix(work) {
                Ok(relative) => Ok(Path::new(GIVEN).join(relative)),
                Err(_) => bail!(
                    "{} is outside {}: an operator run from its image sees only that folder",
                    path.display(),
                    work.display()
                ),
            },
        }
    }

    /// The command that starts `binary`, its arguments still to add.
    pub fn command(&self, binary: &str) -> Command {
        match self {
            Self::Built(path) => Command::new(path),
            Self::Image { rootfs, work } => {
                sandbox(rootfs, Some(work), &format!("/usr/local/bin/{binary}"))
            }
        }
    }
}

/// The process that runs the program under `pid`: `pid` itself for a plain process, the
/// innermost descendant for a sandboxed one (setpriv execs bwrap, which forks an init that
/// forks the program). Signals and memory readings go to it.
pub fn program_pid(pid: u32) -> u32 {
    let mut current = pid;
    loop {
        let children = std::fs::read_to_string(format!("/proc/{current}/task/{current}/children"))
            .unwrap_or_default();
        match children
            .split_whitespace()
            .next()
            .and_then(|c| c.parse().ok())
        {
            Some(child) => current = child,
            None => return current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_sees_the_work_folder_under_given_and_nothing_else() {
        let image = Launch::Image {
            rootfs: "/images/op/rootfs".into(),
            work: "/target/e2e".into(),
        };
        assert_eq!(
            image
                .path(Path::new("/target/e2e/ns/op.kubeconfig"))
                .unwrap(),
            Path::new("/tmp/given/ns/op.kubeconfig")
        );
        assert!(image.path(Path::new("/root/.kube/config")).is_err());
        let built = Launch::Built("/target/debug/op".into());
        assert_eq!(
            built.path(Path::new("/root/.kube/config")).unwrap(),
            Path::new("/root/.kube/config")
        );
    }

    #[test]
    fn signals_go_to_the_innermost_process() -> Result<()> {
        let mut shell = Command::new("sh").args(["-c", "sleep 30; true"]).spawn()?;
        let mut inner = shell.id();
        // The shell starts `sleep` when the scheduler lets it: on a loaded machine, seconds.
        let started = std::time::Instant::now();
        while inner == shell.id() && started.elapsed() < std::time::Duration::from_secs(20) {
            std::thread::sleep(std::time::Duration::from_millis(20));
            inner = program_pid(shell.id());
        }
        let comm = std::fs::read_to_string(format!("/proc/{inner}/comm")).unwrap_or_default();
        Command::new("kill").arg(inner.to_string()).status()?;
        shell.kill()?;
        shell.wait()?;
        assert_eq!(comm.trim(), "sleep");
        Ok(())
    }
}
