//! The embedded default's KEK: 32 random bytes in a file only its owner can read. It plays
//! the role KMS plays in production; lose the file and the wrapped data keys are lost.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{BoxFuture, CryptoError, DataKey, KeyEncryptionKey};

pub struct LocalKeyFile {
    path: PathBuf,
    key: DataKey,
}

impl LocalKeyFile {
    /// Reads the key file, creating it (mode 0600) with a fresh key if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let unavailable =
            |e: std::io::Error| CryptoError::KekUnavailable(format!("{}: {e}", path.display()));
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(unavailable)?;
            }
            let key = DataKey::generate()?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(unavailable)?;
            file.write_all(key.expose_bytes()).map_err(unavailable)?;
            file.sync_all().map_err(unavailable)?;
        }
        let mode = std::fs::metadata(path)
            .map_err(unavailable)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CryptoError::KekUnavailable(format!(
                "{} is readable by others (mode {mode:o}); chmod 600 it",
                path.display()
            )));
        }
        let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(unavailable)?);
        Ok(Self {
            path: path.to_owned(),
            key: DataKey::from_bytes(&bytes)?,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl KeyEncryptionKey for LocalKeyFile {
    fn id(&self) -> String {
        // A fingerprint, not the key: identifies which file wrapped a key.
        let digest = Sha256::digest(self.key.expose_bytes());
        format!("local:{:x}", digest)[..22].to_owned()
    }

    fn wrap<'a>(
        &'a self,
        key: &'a DataKey,
        context: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, CryptoError>> {
        Box::pin(async move { self.key.seal(key.expose_bytes(), context.as_bytes()) })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a [u8],
        context: &'a str,
    ) -> BoxFuture<'a, Result<DataKey, CryptoError>> {
        Box::pin(async move {
            let bytes = zeroize::Zeroizing::new(self.key.open(wrapped, context.as_bytes())?);
            DataKey::from_bytes(&bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_file_is_private_stable_and_binds_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        let kek = LocalKeyFile::load_or_create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let data_key = DataKey::generate().unwrap();
        let wrapped = kek.wrap(&data_key, "organization:a").await.unwrap();
        let again = LocalKeyFile::load_or_create(&path).unwrap();
        assert_eq!(again.id(), kek.id());
        let unwrapped = again.unwrap(&wrapped, "organization:a").await.unwrap();
        assert_eq!(unwrapped.expose_bytes(), data_key.expose_bytes());
        assert!(again.unwrap(&wrapped, "organization:b").await.is_err());

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            LocalKeyFile::load_or_create(&path),
            Err(CryptoError::KekUnavailable(_))
        ));
    }
}
