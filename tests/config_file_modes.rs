//! The store is private whatever the umask: its directory 0700, its files
//! 0600, and a store left world-readable by an older smsgate is tightened
//! when it opens. One test in this binary: the umask is process-wide.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{umask, Mode};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// Every directory and file under `dir` (itself included), with its mode.
fn modes(dir: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = vec![(dir.to_path_buf(), true, mode(dir))];
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.extend(modes(&entry.path()));
        } else if kind.is_file() {
            out.push((entry.path(), false, mode(&entry.path())));
        }
    }
    out
}

fn assert_private(dir: &Path) {
    let found = modes(dir);
    assert!(
        found.iter().any(|(_, is_dir, _)| !is_dir),
        "no files in {found:?}"
    );
    for (path, is_dir, mode) in found {
        let want = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{} is {mode:o}", path.display());
    }
}

#[tokio::test]
async fn the_store_is_private_under_umask_022() {
    umask(Mode::from_bits_truncate(0o022));
    let base = std::env::temp_dir().join(format!("smsgate-modes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);

    // A new store, and a parent that did not exist.
    let path = base.join("state").join("db");
    let store = smsgate::store::Store::open(&path, 1).unwrap();
    store.sync().await.unwrap();
    drop(store);
    assert_private(&path);
    assert_eq!(mode(&base.join("state")), 0o700);

    // A store an older smsgate left 0755/0644: tightened when it opens.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (p, is_dir, _) in modes(&path) {
        let loose = if is_dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(loose)).unwrap();
    }
    let store = common::open_store(&path, 1);
    drop(store);
    assert_private(&path);
    let _ = std::fs::remove_dir_all(&base);
}
