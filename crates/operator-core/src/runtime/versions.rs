//! The Kubernetes versions the operators are tested on (the e2e suite passes on each in CI,
//! README "Supported clusters"), and what a server outside them gets, decided once at start
//! from the server's own version.
//!
//! Older than the oldest tested: the operator refuses to start. Its CRDs' CEL rules, the
//! webhook configurations' `matchConditions` and the CronJob `timeZone` field may be missing
//! there, so objects could be admitted that the rules refuse; in clusters that move money that
//! is worse than not running. Newer: it starts, and says once that the version is untested
//! (every API it uses is GA and served unchanged by newer servers).

use k8s_openapi::apimachinery::pkg::version::Info;

/// The oldest minor version of Kubernetes 1 the e2e suite runs on in CI.
pub const OLDEST_TESTED: u32 = 32;
/// The newest (1.36: OpenShift's build of Kubernetes).
pub const NEWEST_TESTED: u32 = 36;

/// What the operator makes of the server's version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerVersion {
    Tested,
    /// Newer than any tested version: started, with a warning.
    Newer(String),
}

/// The server's version against the tested range; the error says what to do.
pub fn check(info: &Info) -> Result<ServerVersion, String> {
    let digits = |s: &str| {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    };
    let shown = &info.git_version;
    let (Some(1), Some(minor)) = (digits(&info.major), digits(&info.minor)) else {
        return Err(format!(
            "cannot tell the Kubernetes version from {shown:?} (major {:?}, minor {:?}); the operators are tested on 1.{OLDEST_TESTED} through 1.{NEWEST_TESTED}",
            info.major, info.minor
        ));
    };
    if minor < OLDEST_TESTED {
        return Err(format!(
            "Kubernetes {shown} is older than 1.{OLDEST_TESTED}, the oldest version the operators are tested on (1.{OLDEST_TESTED} through 1.{NEWEST_TESTED}): upgrade the cluster, or run a release that supports it"
        ));
    }
    if minor > NEWEST_TESTED {
        return Ok(ServerVersion::Newer(format!(
            "Kubernetes {shown} is newer than 1.{NEWEST_TESTED}, the newest version the operators are tested on; it serves every API they use, but report what differs"
        )));
    }
    Ok(ServerVersion::Tested)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(major: &str, minor: &str, git: &str) -> Info {
        Info {
            major: major.into(),
            minor: minor.into(),
            git_version: git.into(),
            ..Info::default()
        }
    }

    #[test]
    fn the_tested_range_starts_an_older_server_refuses_a_newer_one_warns() {
        assert_eq!(
            check(&info("1", "32", "v1.32.0-beta.0")),
            Ok(ServerVersion::Tested)
        );
        // OpenShift and managed clusters write the minor with a `+`.
        assert_eq!(
            check(&info("1", "36+", "v1.36.2+abc")),
            Ok(ServerVersion::Tested)
        );
        let old = check(&info("1", "24", "v1.24.0")).err().unwrap_or_default();
        assert!(
            old.contains("older than 1.32") && old.contains("v1.24.0"),
            "{old}"
        );
        assert!(matches!(
            check(&info("1", "38", "v1.38.0")),
            Ok(ServerVersion::Newer(m)) if m.contains("v1.38.0")
        ));
        assert!(check(&info("", "", "weird")).is_err());
    }
}
