//! A deterministic tar writer (POSIX ustar): entries sorted by path, one fixed mtime, owners
//! by number only, so the same files always give the same bytes and so the same digest.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

/// What one path in an archive is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Dir { mode: u32, owner: u32 },
    File { mode: u32, data: Vec<u8> },
}

/// The files of an archive by path (relative, no leading `/`), written in path order.
#[derive(Debug, Default)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

impl Archive {
    /// Adds a regular file owned by root, and every parent directory it lacks (0755, root).
    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) {
        self.parents(path);
        self.entries
            .insert(path.to_string(), Entry::File { mode, data });
    }

    pub fn dir(&mut self, path: &str, mode: u32, owner: u32) {
        self.parents(path);
        self.entries
            .insert(path.to_string(), Entry::Dir { mode, owner });
    }

    fn parents(&mut self, path: &str) {
        let mut parent = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, p)| p)
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            self.entries.entry(parent.clone()).or_insert(Entry::Dir {
                mode: 0o755,
                owner: 0,
            });
        }
    }

    pub fn paths(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// The archive's bytes: each entry stamped with `mtime` (seconds since the epoch).
    pub fn to_bytes(&self, mtime: u64) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for (path, entry) in &self.entries {
            let (name, kind, mode, owner, size) = match entry {
                Entry::Dir { mode, owner } => (format!("{path}/"), b'5', *mode, *owner, 0),
                Entry::File { mode, data } => (path.clone(), b'0', *mode, 0, data.len()),
            };
            out.extend(header(&name, kind, mode, owner, size as u64, mtime)?);
            if let Entry::File { data, .. } = entry {
                out.extend(data);
                out.resize(out.len().next_multiple_of(512), 0);
            }
        }
        // The end of an archive: two empty blocks.
        out.resize(out.len() + 1024, 0);
        Ok(out)
    }
}

fn header(name: &str, kind: u8, mode: u32, owner: u32, size: u64, mtime: u64) -> Result<[u8; 512]> {
    let mut h = [0u8; 512];
    // ustar splits a long path into a prefix (up to 155 bytes) and a name (up to 100).
    let (prefix, name) = if name.len() <= 100 {
        ("", name)
    } else {
        match name[..name.len().min(156)].rfind('/') {
            Some(cut) if name.len() - cut - 1 <= 100 => (&name[..cut], &name[cut + 1..]),
            _ => bail!("{name}: too long for a ustar header"),
        }
    };
    put(&mut h[0..100], name.as_bytes());
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], u64::from(owner));
    octal(&mut h[116..124], u64::from(owner));
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = kind;
    put(&mut h[257..263], b"ustar\0");
    put(&mut h[263..265], b"00");
    put(&mut h[345..500], prefix.as_bytes());
    // The checksum is summed with its own field as spaces.
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    put(&mut h[148..156], format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

fn put(field: &mut [u8], value: &[u8]) {
    field[..value.len()].copy_from_slice(value);
}

/// A number as zero-padded octal, NUL-terminated, filling the field.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    put(field, format!("{value:0width$o}\0").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_files_give_the_same_bytes_whatever_the_order_they_were_added_in() {
        let mut a = Archive::default();
        a.file("etc/passwd", 0o644, b"root\n".to_vec());
        a.file("usr/local/bin/op", 0o755, vec![1; 700]);
        let mut b = Archive::default();
        b.file("usr/local/bin/op", 0o755, vec![1; 700]);
        b.file("etc/passwd", 0o644, b"root\n".to_vec());
        assert_eq!(a.to_bytes(1).unwrap(), b.to_bytes(1).unwrap());
        assert_ne!(a.to_bytes(1).unwrap(), a.to_bytes(2).unwrap());
    }

    #[test]
    fn parents_come_first_and_every_block_is_whole() {
        let mut a = Archive::default();
        a.file("usr/local/bin/op", 0o755, vec![1; 700]);
        let paths: Vec<_> = a.paths().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            ["usr", "usr/local", "usr/local/bin", "usr/local/bin/op"]
        );
        let bytes = a.to_bytes(0).unwrap();
        // Four headers, two blocks of data, two closing blocks.
        assert_eq!(bytes.len(), 512 * 8);
        assert_eq!(&bytes[257..262], b"ustar");
    }

    #[test]
    fn a_long_path_is_split_into_prefix_and_name() {
        let long = format!("{}/file", "d".repeat(120));
        let h = header(&long, b'0', 0o644, 0, 0, 0).unwrap();
        assert_eq!(&h[0..4], b"file");
        assert_eq!(&h[345..348], b"ddd");
        assert!(header(&"x".repeat(300), b'0', 0o644, 0, 0, 0).is_err());
    }
}
