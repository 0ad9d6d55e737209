//! Component bytes and compiled artifacts as plain files, named by the
//! component's sha256, beside the sled database.
//!
//! They used to be values in sled. sled keeps large values in blob files
//! but reads them back while it recovers its log at open: with a store of
//! 20 connectors (one JavaScript and one Python component, ~350 MB of
//! bytes and artifacts), sled's blob reads and their checksums were ~70 %
//! of the host's start-up samples (perf), before anything listened. Here
//! nothing is read until a connector is first called.
//!
//! Writes are atomic (an owner-only temporary file, fsync, rename, fsync of
//! the directory), so a crash leaves the old file or the new one, never
//! half of one. Contents are checked where they are used: component bytes against
//! the digest in their name when they are compiled, artifacts against the
//! checksum they carry (`runtime::open_artifact`).

use std::path::{Path, PathBuf};

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// The uploaded component.
    Component,
    /// The compiled artifact (checksum + wasmtime's serialized component).
    Artifact,
}

impl Kind {
    fn extension(self) -> &'static str {
        match self {
            Kind::Component => "wasm",
            Kind::Artifact => "cwasm",
        }
    }
}

/// Prefix of files being written; whatever carries it after a crash is
/// removed by [`Files::sweep`].
const PARTIAL: &str = ".partial-";

/// A directory of content-addressed files.
pub(super) struct Files {
    dir: PathBuf,
}

impl Files {
    /// Opens (creates, owner-only) the directory.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, digest: &str, kind: Kind) -> std::io::Result<PathBuf> {
        // Digests come from our own sha256, but a name must never leave
        // the directory whatever a record says.
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{digest:?} is not a sha256 digest"),
            ));
        }
        Ok(self.dir.join(format!("{digest}.{}", kind.extension())))
    }

    /// The file's contents, `None` if there is no such file.
    pub fn get(&self, digest: &str, kind: Kind) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(digest, kind)?) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the file atomically and durably (replacing an existing one).
    pub fn put(&self, digest: &str, kind: Kind, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path(digest, kind)?;
        let partial = self.dir.join(format!(
            "{PARTIAL}{}-{digest}.{}",
            uuid::Uuid::new_v4().simple(),
            kind.extension()
        ));
        // Owner-only like the rest of the data dir: artifacts are code the
        // host runs.
        let written = crate::api::write_owner_only(&partial, bytes)
            .and_then(|()| std::fs::rename(&partial, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written?;
        self.sync_dir()
    }

    /// Removes the file, if it exists.
    pub fn remove(&self, digest: &str, kind: Kind) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(digest, kind)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => self.sync_dir(),
        }
    }

    /// Removes partial writes and the files of digests `keep` says no
    /// record refers to (left by a crash between a file and its record).
    /// Returns how many files were removed.
    pub fn sweep(&self, keep: impl Fn(&str) -> bool) -> std::io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let digest = name.split('.').next().unwrap_or_default();
            if name.starts_with(PARTIAL) || !keep(digest) {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.sync_dir()?;
        }
        Ok(removed)
    }

    /// Makes renames and removals in the directory durable.
    fn sync_dir(&self) -> std::io::Result<()> {
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn temp() -> (Files, PathBuf) {
        let dir = std::env::temp_dir().join(format!("pb-files-{}", uuid::Uuid::new_v4()));
        (Files::open(&dir).unwrap(), dir)
    }

    #[test]
    fn files_round_trip_and_are_replaced_whole() {
        let (files, dir) = temp();
        assert_eq!(files.get(DIGEST, Kind::Component).unwrap(), None);
        files.put(DIGEST, Kind::Component, b"first").unwrap();
        files.put(DIGEST, Kind::Artifact, b"compiled").unwrap();
        files.put(DIGEST, Kind::Component, b"second").unwrap();
        assert_eq!(
            files.get(DIGEST, Kind::Component).unwrap().unwrap(),
            b"second"
        );
        assert_eq!(
            files.get(DIGEST, Kind::Artifact).unwrap().unwrap(),
            b"compiled"
        );
        files.remove(DIGEST, Kind::Component).unwrap();
        files.remove(DIGEST, Kind::Component).unwrap();
        assert_eq!(files.get(DIGEST, Kind::Component).unwrap(), None);
        assert!(files.get(DIGEST, Kind::Artifact).unwrap().is_some());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn names_that_are_not_digests_are_refused() {
        let (files, dir) = temp();
        for bad in ["../../etc/passwd", "", "abc", &"g".repeat(64)] {
            let e = files.put(bad, Kind::Component, b"x").unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn sweep_removes_partial_writes_and_unreferenced_files_only() {
        let (files, dir) = temp();
        let other = "f".repeat(64);
        files.put(DIGEST, Kind::Component, b"kept").unwrap();
        files.put(&other, Kind::Artifact, b"orphan").unwrap();
        std::fs::write(dir.join(format!("{PARTIAL}x-{DIGEST}.wasm")), b"half").unwrap();
        assert_eq!(files.sweep(|d| d == DIGEST).unwrap(), 2);
        assert!(files.get(DIGEST, Kind::Component).unwrap().is_some());
        assert_eq!(files.get(&other, Kind::Artifact).unwrap(), None);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(dir).ok();
    }
}
