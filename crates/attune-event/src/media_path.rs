use crate::EventError;
use std::path::{Component, Path, PathBuf};

/// A media path that stays inside the manifest's folder.
///
/// Checked twice: lexically when the line is parsed (no absolute paths, no `..`, no empty path),
/// and again when the file is opened ([`MediaPath::resolve`]), after symlinks are followed, so a
/// link that points out of the folder is refused too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPath {
    root: PathBuf,
    relative: PathBuf,
}

/// The longest media path accepted, in bytes.
const MAX_PATH_BYTES: usize = 4096;

impl MediaPath {
    /// Check `relative` lexically against `root` (the manifest's folder, already canonical).
    pub fn new(root: &Path, relative: &str) -> Result<MediaPath, EventError> {
        let refuse = |reason| EventError::PathRefused { path: relative.to_string(), reason };
        if relative.is_empty() {
            return Err(refuse("empty path"));
        }
        if relative.len() > MAX_PATH_BYTES {
            return Err(refuse("path too long"));
        }
        if relative.contains('\0') {
            return Err(refuse("NUL byte in path"));
        }
        let rel = Path::new(relative);
        for component in rel.components() {
            match component {
                Component::Normal(_) | Component::CurDir => {}
                Component::ParentDir => return Err(refuse("`..` leaves the manifest's folder")),
                Component::RootDir | Component::Prefix(_) => return Err(refuse("absolute paths are not allowed")),
            }
        }
        Ok(MediaPath { root: root.to_path_buf(), relative: rel.to_path_buf() })
    }

    /// The path as written in the manifest.
    pub fn relative(&self) -> &Path {
        &self.relative
    }

    /// The real file, symlinks followed, refused unless it is a regular file inside the root.
    pub fn resolve(&self) -> Result<PathBuf, EventError> {
        let shown = self.relative.display().to_string();
        let real = self
            .root
            .join(&self.relative)
            .canonicalize()
            .map_err(|source| EventError::MediaMissing { path: shown.clone(), source })?;
        if !real.starts_with(&self.root) {
            return Err(EventError::PathRefused {
                path: shown,
                reason: "a symlink leads out of the manifest's folder",
            });
        }
        if !real.is_file() {
            return Err(EventError::PathRefused { path: shown, reason: "not a regular file" });
        }
        Ok(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_checks_refuse_escapes() {
        let root = Path::new("/data/batch");
        assert!(MediaPath::new(root, "photos/a.jpg").is_ok());
        assert!(MediaPath::new(root, "./a.jpg").is_ok());
        for bad in ["../a.jpg", "photos/../../a.jpg", "/etc/passwd", "", "a\0b"] {
            assert!(matches!(MediaPath::new(root, bad), Err(EventError::PathRefused { .. })), "{bad:?}");
        }
    }

    #[test]
    fn resolve_refuses_symlink_out_and_accepts_files_inside() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.jpg"), b"x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("ok.jpg"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.jpg"), root.join("link.jpg")).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();

        assert!(MediaPath::new(&root, "ok.jpg").unwrap().resolve().is_ok());
        let link = MediaPath::new(&root, "link.jpg").unwrap().resolve();
        assert!(matches!(link, Err(EventError::PathRefused { .. })), "{link:?}");
        let missing = MediaPath::new(&root, "missing.jpg").unwrap().resolve();
        assert!(matches!(missing, Err(EventError::MediaMissing { .. })));
        let folder = MediaPath::new(&root, "sub").unwrap().resolve();
        assert!(matches!(folder, Err(EventError::PathRefused { .. })));
    }
}
