//! Committing the exports to a Git repository, in our own code over Git's smart HTTP protocol
//! (receive-pack): no `git` in the image, no libgit2. One commit per run on the service's
//! branch, whose tree is the exports the claim keeps, parented on the branch's head: the head
//! holds what retention keeps, the history every export ever pushed.
//!
//! Nothing is fetched: the commit is built from the claim alone, so only the branch's head is
//! read (from the ref advertisement). If someone else moves the branch between that read and
//! the push, the server refuses the update and the push starts again from the new head.

use std::collections::BTreeMap;
use std::io::Write as _;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use k8s_openapi::jiff::Timestamp;
use operator_core::credentials::Hidden;
use operator_core::http_client;
use sha1::{Digest, Sha1};

/// Who the commits are by.
const AUTHOR: &str = "payment-service-operator <payment-service-operator@payments.io>";
/// How often a push is tried again when the branch moved under it.
const ATTEMPTS: usize = 3;
/// The largest answer read from the server (a ref advertisement or a push report).
const MAX_ANSWER: usize = 4 << 20;
/// The id a missing ref has in the protocol.
const NO_COMMIT: &str = "0000000000000000000000000000000000000000";

/// Where to push, and as whom.
#[derive(Clone, Debug)]
pub struct Remote {
    /// The repository's URL, e.g. `https://git.example.com/platform/backups.git`.
    pub url: String,
    /// The branch, without `refs/heads/`.
    pub branch: String,
    pub username: String,
    pub password: Hidden<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("could not reach the Git repository {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error(
        "the Git repository {url} refused the credentials (HTTP {status}): check the username and password of the credentials Secret, and that they may push"
    )]
    Denied { url: String, status: u16 },
    #[error("the Git repository {url} answered HTTP {status} to {what}")]
    Http {
        url: String,
        status: u16,
        what: &'static str,
    },
    #[error("the Git repository {url} refused the push to {branch}: {reason}")]
    Refused {
        url: String,
        branch: String,
        reason: String,
    },
    #[error("the Git repository {url} answered what is not Git's smart HTTP protocol: {why}")]
    Protocol { url: String, why: String },
}

/// Commits `files` (path in the repository → content) as the branch's whole tree, with
/// `message`, at `now`; answers the commit's id.
pub async fn push(
    remote: &Remote,
    files: &BTreeMap<String, Vec<u8>>,
    message: &str,
    now: Timestamp,
) -> Result<String, GitError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let head = branch_head(remote).await?;
        let mut objects = Objects::default();
        let tree = objects.tree(files);
        let commit = objects.commit(&tree, head.as_deref(), message, now);
        match send_pack(remote, head.as_deref(), &commit, &objects).await {
            Err(GitError::Refused { .. }) if attempt < ATTEMPTS => continue,
            Err(error) => return Err(error),
            Ok(()) => return Ok(commit),
        }
    }
}

/// The commit the branch points at, `None` for a new branch.
async fn branch_head(remote: &Remote) -> Result<Option<String>, GitError> {
    let url = format!(
        "{}/info/refs?service=git-receive-pack",
        remote.url.trim_end_matches('/')
    );
    let request = http::Request::get(&url).body(Full::new(Bytes::new()));
    let body = exchange(remote, request, "the ref advertisement").await?;
    let wanted = format!("refs/heads/{}", remote.branch);
    let protocol = |why: String| GitError::Protocol {
        url: remote.url.clone(),
        why,
    };
    let lines = pkt_lines(&body).map_err(protocol)?;
    if lines.first().map(|l| l.as_slice()) != Some(b"# service=git-receive-pack\n".as_slice()) {
        return Err(protocol("no receive-pack service announcement".into()));
    }
    for line in lines.iter().skip(1) {
        let line = String::from_utf8_lossy(line);
        let advert = line.split('\0').next().unwrap_or_default().trim_end();
        if let Some((id, name)) = advert.split_once(' ')
            && name == wanted
            && id != NO_COMMIT
        {
            return Ok(Some(id.to_string()));
        }
    }
    Ok(None)
}

/// Sends the update of the branch from `old` to `new` with every object of the commit.
async fn send_pack(
    remote: &Remote,
    old: Option<&str>,
    new: &str,
    objects: &Objects,
) -> Result<(), GitError> {
    let reference = format!("refs/heads/{}", remote.branch);
    let command = format!(
        "{} {new} {reference}\0report-status agent=payment-service-operator\n",
        old.unwrap_or(NO_COMMIT)
    );
    let mut body = pkt_line(command.as_bytes());
    body.extend_from_slice(b"0000");
    body.extend_from_slice(&objects.pack());
    let url = format!("{}/git-receive-pack", remote.url.trim_end_matches('/'));
    let request = http::Request::post(&url)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-git-receive-pack-request",
        )
        .header(
            http::header::ACCEPT,
            "application/x-git-receive-pack-result",
        )
        .body(Full::new(Bytes::from(body)));
    let answer = exchange(remote, request, "the push").await?;
    let lines = pkt_lines(&answer).map_err(|why| GitError::Protocol {
        url: remote.url.clone(),
        why,
    })?;
    let report: Vec<String> = lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).trim_end().to_string())
        .collect();
    let refused = |reason: String| GitError::Refused {
        url: remote.url.clone(),
        branch: remote.branch.clone(),
        reason,
    };
    match report.first().map(String::as_str) {
        Some("unpack ok") => {}
        Some(other) => return Err(refused(other.to_string())),
        None => return Err(refused("no report".into())),
    }
    // Each ref's line is `ok <ref>` or `ng <ref> <reason>`.
    match report
        .iter()
        .skip(1)
        .find(|l| l.split(' ').nth(1) == Some(&reference))
    {
        Some(line) if line.starts_with("ok ") => Ok(()),
        Some(line) => Err(refused(line.clone())),
        None => Err(refused(format!("no status for {reference}"))),
    }
}

async fn exchange(
    remote: &Remote,
    request: Result<http::Request<Full<Bytes>>, http::Error>,
    what: &'static str,
) -> Result<Bytes, GitError> {
    let unreachable = |why: String| GitError::Unreachable {
        url: remote.url.clone(),
        why,
    };
    let mut request = request.map_err(|e| unreachable(e.to_string()))?;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        remote.username,
        remote.password.expose()
    ));
    let headers = request.headers_mut();
    let authorization = http::HeaderValue::from_str(&format!("Basic {basic}"))
        .map_err(|_| unreachable("the credentials are not valid in an HTTP header".into()))?;
    headers.insert(http::header::AUTHORIZATION, authorization);
    headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("git/payment-service-operator"),
    );
    let uri = request.uri().clone();
    let tls = || http_client::tls_config(None);
    let (status, body) = http_client::exchange(&uri, request, tls, MAX_ANSWER)
        .await
        .map_err(unreachable)?;
    match status {
        200 => Ok(body),
        401 | 403 => Err(GitError::Denied {
            url: remote.url.clone(),
            status,
        }),
        status => Err(GitError::Http {
            url: remote.url.clone(),
            status,
            what,
        }),
    }
}

/// One pkt-line: its length (with the four digits) in hex, then the data.
fn pkt_line(data: &[u8]) -> Vec<u8> {
    let mut line = format!("{:04x}", data.len() + 4).into_bytes();
    line.extend_from_slice(data);
    line
}

/// The data of each pkt-line in `body`; flush packets (`0000`) are skipped.
fn pkt_lines(mut body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut lines = Vec::new();
    while !body.is_empty() {
        let length = body
            .get(..4)
            .and_then(|l| std::str::from_utf8(l).ok())
            .and_then(|l| usize::from_str_radix(l, 16).ok())
            .ok_or("a pkt-line without a length")?;
        if length == 0 {
            body = &body[4..];
            continue;
        }
        let line = body
            .get(4..length)
            .ok_or("a pkt-line longer than the answer")?;
        lines.push(line.to_vec());
        body = &body[length..];
    }
    Ok(lines)
}

/// The objects of one commit, by id, as the pack carries them.
#[derive(Default)]
struct Objects {
    objects: BTreeMap<String, (Kind, Vec<u8>)>,
}

#[derive(Clone, Copy)]
enum Kind {
    Commit = 1,
    Tree = 2,
    Blob = 3,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Commit => "commit",
            Kind::Tree => "tree",
            Kind::Blob => "blob",
        }
    }
}

impl Objects {
    /// Stores an object, answering its id: the SHA-1 of `<kind> <length>\0<content>`.
    fn add(&mut self, kind: Kind, content: Vec<u8>) -> String {
        let mut hash = Sha1::new();
        hash.update(format!("{} {}\0", kind.name(), content.len()));
        hash.update(&content);
        let id = hex(&hash.finalize());
        self.objects.insert(id.clone(), (kind, content));
        id
    }

    /// The tree of `files` (paths separated by `/`), with its subtrees.
    fn tree(&mut self, files: &BTreeMap<String, Vec<u8>>) -> String {
        let mut here: BTreeMap<String, (bool, String)> = BTreeMap::new();
        let mut below: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
        for (path, content) in files {
            match path.split_once('/') {
                Some((dir, rest)) => {
                    below
                        .entry(dir.to_string())
                        .or_default()
                        .insert(rest.to_string(), content.clone());
                }
                None => {
                    let blob = self.add(Kind::Blob, content.clone());
                    here.insert(path.clone(), (false, blob));
                }
            }
        }
        for (dir, files) in below {
            let tree = self.tree(&files);
            here.insert(dir, (true, tree));
        }
        // Git orders a tree's entries by name, a directory's name as if it ended in `/`.
        let mut entries: Vec<_> = here.into_iter().collect();
        entries.sort_by_key(|(name, (dir, _))| {
            let mut key = name.clone().into_bytes();
            if *dir {
                key.push(b'/');
            }
            key
        });
        let mut content = Vec::new();
        for (name, (dir, id)) in entries {
            let mode = if dir { "40000" } else { "100644" };
            content.extend_from_slice(format!("{mode} {name}\0").as_bytes());
            content.extend_from_slice(&unhex(&id));
        }
        self.add(Kind::Tree, content)
    }

    fn commit(
        &mut self,
        tree: &str,
        parent: Option<&str>,
        message: &str,
        now: Timestamp,
    ) -> String {
        let mut text = format!("tree {tree}\n");
        if let Some(parent) = parent {
            text.push_str(&format!("parent {parent}\n"));
        }
        let when = format!("{} +0000", now.as_second());
        text.push_str(&format!(
            "author {AUTHOR} {when}\ncommitter {AUTHOR} {when}\n\n{message}\n"
        ));
        self.add(Kind::Commit, text.into_bytes())
    }

    /// A version 2 pack of every object, each deflated whole (no deltas).
    fn pack(&self) -> Vec<u8> {
        let mut pack = b"PACK".to_vec();
        pack.extend_from_slice(&2u32.to_be_bytes());
        pack.extend_from_slice(&(self.objects.len() as u32).to_be_bytes());
        for (kind, content) in self.objects.values() {
            // Type and size: the type in bits 4-6 of the first byte, the size in its low
            // four bits and then seven bits a byte, the high bit saying more follows.
            let mut size = content.len();
            let mut byte = ((*kind as u8) << 4) | (size & 0x0f) as u8;
            size >>= 4;
            while size > 0 {
                pack.push(byte | 0x80);
                byte = (size & 0x7f) as u8;
                size >>= 7;
            }
            pack.push(byte);
            let mut deflate =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            // Writing to a Vec cannot fail.
            let _ = deflate.write_all(content);
            pack.extend_from_slice(&deflate.finish().unwrap_or_default());
        }
        let trailer = Sha1::digest(&pack);
        pack.extend_from_slice(&trailer);
        pack
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(id: &str) -> Vec<u8> {
    (0..id.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(id.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids `git hash-object` and `git mktree` give for the same content.
    #[test]
    fn objects_have_the_ids_git_gives_them() {
        let mut objects = Objects::default();
        assert_eq!(
            objects.add(Kind::Blob, b"hello\n".to_vec()),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        let files = BTreeMap::from([("hello.txt".to_string(), b"hello\n".to_vec())]);
        // printf 'hello\n' > hello.txt && git add hello.txt && git write-tree
        assert_eq!(
            objects.tree(&files),
            "aaa96ced2d9a1c8e72c56b253a0e2fe78393feb7"
        );
    }

    #[test]
    fn a_directory_sorts_as_if_its_name_ended_in_a_slash() {
        let mut objects = Objects::default();
        let files = BTreeMap::from([
            ("a-b".to_string(), b"1".to_vec()),
            ("a/c".to_string(), b"2".to_vec()),
            ("a.b".to_string(), b"3".to_vec()),
        ]);
        let tree = objects.tree(&files);
        let content = &objects.objects[&tree].1;
        let names: Vec<String> = content
            .split(|b| *b == 0)
            .filter_map(|part| {
                let text = String::from_utf8_lossy(part);
                text.rsplit(' ').next().map(String::from)
            })
            .filter(|n| n.starts_with('a'))
            .collect();
        assert_eq!(names, ["a-b", "a.b", "a"]);
    }

    #[test]
    fn pkt_lines_read_back_what_is_written() {
        let mut body = pkt_line(b"# service=git-receive-pack\n");
        body.extend_from_slice(b"0000");
        body.extend_from_slice(&pkt_line(b"unpack ok\n"));
        assert_eq!(&body[..4], b"001f");
        let lines = pkt_lines(&body).unwrap_or_default();
        assert_eq!(
            lines,
            [
                b"# service=git-receive-pack\n".to_vec(),
                b"unpack ok\n".to_vec()
            ]
        );
        assert!(pkt_lines(b"00ff short").is_err());
        assert!(pkt_lines(b"zz").is_err());
    }

    #[test]
    fn the_password_is_never_printed() {
        let remote = Remote {
            url: "https://git.example.com/backups.git".into(),
            branch: "main".into(),
            username: "ci".into(),
            password: Hidden::new("s3cret".into()),
        };
        assert!(!format!("{remote:?}").contains("s3cret"));
    }
}
