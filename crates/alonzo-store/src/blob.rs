//! The content-addressed package store: a package is stored once under the hex SHA-256 of
//! its bytes, written crash-safely (temporary file, fsync, rename, fsync of the directory).

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::StoreError;

/// Storage for immutable deployment packages, keyed by their SHA-256.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `bytes` durably and returns their hex SHA-256. Storing the same bytes twice is
    /// a no-op.
    async fn put(&self, bytes: Vec<u8>) -> Result<String, StoreError>;
    /// Reads a package.
    async fn get(&self, sha256_hex: &str) -> Result<Vec<u8>, StoreError>;
    /// Whether a package is present.
    async fn contains(&self, sha256_hex: &str) -> Result<bool, StoreError>;
    /// Every stored hash.
    async fn list(&self) -> Result<Vec<String>, StoreError>;
    /// Removes a package; absent packages are not an error.
    async fn delete(&self, sha256_hex: &str) -> Result<(), StoreError>;
}

/// Packages as files `<root>/<aa>/<sha256>` on local disk.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating if needed) a store rooted at `root`, and removes temporary files a
    /// crash may have left behind.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        std::fs::create_dir_all(root.join("tmp")).map_err(backend)?;
        for entry in std::fs::read_dir(root.join("tmp")).map_err(backend)? {
            let _ = std::fs::remove_file(entry.map_err(backend)?.path());
        }
        Ok(Self { root })
    }

    /// The file a hash is stored in (hashes are validated so no path can be smuggled in).
    fn path_of(&self, sha256_hex: &str) -> Result<PathBuf, StoreError> {
        if sha256_hex.len() != 64
            || !sha256_hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(StoreError::NotFound);
        }
        Ok(self.root.join(&sha256_hex[..2]).join(sha256_hex))
    }

    fn put_blocking(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let hash = hex::encode(Sha256::digest(bytes));
        let dest = self.path_of(&hash)?;
        if dest.exists() {
            return Ok(hash);
        }
        let dir = dest.parent().expect("blob paths have a parent");
        std::fs::create_dir_all(dir).map_err(backend)?;
        let tmp = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let mut file = std::fs::File::create(&tmp).map_err(backend)?;
        file.write_all(bytes).map_err(backend)?;
        file.sync_all().map_err(backend)?;
        drop(file);
        std::fs::rename(&tmp, &dest).map_err(backend)?;
        sync_dir(dir)?;
        Ok(hash)
    }

    fn list_blocking(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for shard in std::fs::read_dir(&self.root).map_err(backend)? {
            let shard = shard.map_err(backend)?;
            let name = shard.file_name();
            if name.len() != 2 || !shard.path().is_dir() {
                continue;
            }
            for blob in std::fs::read_dir(shard.path()).map_err(backend)? {
                let blob_name = blob.map_err(backend)?.file_name().to_string_lossy().into_owned();
                if self.path_of(&blob_name).is_ok() {
                    out.push(blob_name);
                }
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, bytes: Vec<u8>) -> Result<String, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.put_blocking(&bytes)).await.map_err(backend)?
    }

    async fn get(&self, sha256_hex: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path_of(sha256_hex)?;
        match tokio::fs::read(path).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound),
            Err(e) => Err(backend(e)),
        }
    }

    async fn contains(&self, sha256_hex: &str) -> Result<bool, StoreError> {
        match self.path_of(sha256_hex) {
            Ok(path) => Ok(tokio::fs::try_exists(path).await.map_err(backend)?),
            Err(_) => Ok(false),
        }
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.list_blocking()).await.map_err(backend)?
    }

    async fn delete(&self, sha256_hex: &str) -> Result<(), StoreError> {
        let path = self.path_of(sha256_hex)?;
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(backend)
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let hash = store.put(b"hello".to_vec()).await.unwrap();
        assert_eq!(hash, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(store.put(b"hello".to_vec()).await.unwrap(), hash);
        assert_eq!(store.get(&hash).await.unwrap(), b"hello");
        assert!(store.contains(&hash).await.unwrap());
        assert_eq!(store.list().await.unwrap(), vec![hash.clone()]);
        store.delete(&hash).await.unwrap();
        assert!(matches!(store.get(&hash).await, Err(StoreError::NotFound)));
        assert!(store.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn hostile_hashes_are_not_paths() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        assert!(matches!(store.get("../../etc/passwd").await, Err(StoreError::NotFound)));
        assert!(!store.contains(&"A".repeat(64)).await.unwrap());
    }

    #[tokio::test]
    async fn leftover_temporaries_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::write(dir.path().join("tmp/partial"), b"half").unwrap();
        FsBlobStore::open(dir.path()).unwrap();
        assert!(!dir.path().join("tmp/partial").exists());
    }
}
