//! The compiled-fixer cache. Loading a compiled artifact runs it as native code, so the cache is
//! treated like the binary: it lives in a per-user directory that only its owner can write, and
//! every artifact is authenticated (HMAC-SHA256, with a key kept outside the cache) before it is
//! deserialised. The MAC covers the SHA-256 of the `.wasm` it was compiled from, so one fixer's
//! artifact copied over another's does not verify either. A mismatch means recompile and warn,
//! never load.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::base::{create_private, hex, sha256_hex};

type HmacSha256 = Hmac<Sha256>;

/// The default cache directory: `$XDG_CACHE_HOME/salve`, else `$HOME/.cache/salve`. Never the
/// current directory, which a cloned repository controls.
pub fn default_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    xdg.or_else(|| home().map(|h| h.join(".cache")))
        .map(|d| d.join("salve"))
}

/// The key file in use: `SALVE_CACHE_KEY_FILE`, else [`default_key_file`].
pub fn key_file() -> Option<PathBuf> {
    std::env::var_os("SALVE_CACHE_KEY_FILE")
        .map(PathBuf::from)
        .or_else(default_key_file)
}

/// The default key file: `$XDG_CONFIG_HOME/salve/cache.key`, else `$HOME/.config/salve/cache.key`.
/// Outside the cache on purpose: whoever can write the cache must not also hold the key.
pub fn default_key_file() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    xdg.or_else(|| home().map(|h| h.join(".config")))
        .map(|d| d.join("salve").join("cache.key"))
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// Refuses a path that someone other than this user (or root) could have written.
fn check_not_writable_by_others(path: &Path, what: &str) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("reading the {what} {}", path.display()))?;
    if meta.file_type().is_symlink() {
        bail!("the {what} {} is a symlink; refusing it", path.display());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    // Root may own it too (a system install, a Lambda package's read-only /var/task): root can
    // replace the binary anyway.
    if meta.uid() != me && meta.uid() != 0 {
        bail!(
            "the {what} {} is owned by uid {}, not by this user (uid {me}) or root; refusing it",
            path.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "the {what} {} has mode {:o}, which others can write; refusing it (chmod go-w it)",
            path.display(),
            meta.mode() & 0o777,
        );
    }
    Ok(())
}

/// An authenticated on-disk cache of compiled components.
pub struct DiskCache {
    dir: PathBuf,
    key: Vec<u8>,
}

impl DiskCache {
    /// Opens (creating 0700) the cache directory and reads (creating 0600) the key. Either one
    /// writable by others is an error: the caller then runs without a disk cache.
    pub fn open(dir: &Path, key_file: &Path) -> Result<DiskCache> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating the fixer cache {}", dir.display()))?;
        check_not_writable_by_others(dir, "fixer cache directory")?;
        let key = read_or_create_key(key_file)?;
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            key,
        })
    }

    pub fn path(&self, wasm_sha256: &str, engine_hash: u64) -> PathBuf {
        self.dir
            .join(format!("{wasm_sha256}-{engine_hash:016x}.cwasm"))
    }

    /// The tag authenticates the artifact's SHA-256, not its bytes: the host needs that digest
    /// anyway (it is the artifact's identity in every record), so each load hashes the artifact
    /// once instead of twice. With SHA-256's collision resistance this is as strong as a MAC of
    /// the bytes.
    fn mac(&self, wasm_sha256: &str, artifact_sha256: &str) -> HmacSha256 {
        // new_from_slice accepts keys of any length for HMAC.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"salve-artifact-v2\n");
        mac.update(wasm_sha256.as_bytes());
        mac.update(b"\n");
        mac.update(artifact_sha256.as_bytes());
        mac
    }

    /// The artifact's bytes and SHA-256, only if its tag verifies for this `.wasm` digest.
    /// `Ok(None)` when there is no artifact; `Err` (with the reason) when there is one that must
    /// not be loaded.
    pub fn read(&self, path: &Path, wasm_sha256: &str) -> Result<Option<(Vec<u8>, String)>> {
        let mut bytes = Vec::new();
        match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(mut f) => f.read_to_end(&mut bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let tag_path = path.with_extension("cwasm.hmac");
        let tag = std::fs::read_to_string(&tag_path).with_context(|| {
            format!(
                "the artifact has no authentication tag ({})",
                tag_path.display()
            )
        })?;
        let tag = decode_hex(tag.trim()).context("the artifact's tag is not hex")?;
        let digest = sha256_hex(&bytes);
        self.mac(wasm_sha256, &digest)
            .verify_slice(&tag)
            .map_err(|_| {
                anyhow::anyhow!(
                    "the artifact's tag does not verify: it was not written by this cache for this fixer"
                )
            })?;
        Ok(Some((bytes, digest)))
    }

    /// Writes an artifact (whose SHA-256 is `artifact_sha256`) and its tag, each 0600, through a
    /// fresh temporary file.
    pub fn write(
        &self,
        path: &Path,
        wasm_sha256: &str,
        artifact: &[u8],
        artifact_sha256: &str,
    ) -> Result<()> {
        let tag = hex(&self
            .mac(wasm_sha256, artifact_sha256)
            .finalize()
            .into_bytes());
        write_private(path, artifact)?;
        write_private(&path.with_extension("cwasm.hmac"), tag.as_bytes())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = create_private(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn read_or_create_key(path: &Path) -> Result<Vec<u8>> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut key = [0u8; 32];
        File::open("/dev/urandom")
            .and_then(|mut r| r.read_exact(&mut key))
            .context("reading /dev/urandom for the cache key")?;
        match create_private(path) {
            Ok(mut f) => {
                f.write_all(hex(&key).as_bytes())?;
                f.sync_all()?;
            }
            // Another process created it first; use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| format!("creating the cache key {}", path.display()))
            }
        }
    }
    // Nobody else may change the key. Others reading it is a weakness only where they can
    // also write the cache, which the directory check already rules out; say so anyway.
    check_not_writable_by_others(path, "cache key")?;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.mode() & 0o044 != 0 {
            tracing::warn!(
                path = %path.display(),
                "the cache key is readable by others; chmod go-r it unless it ships read-only in a signed package"
            );
        }
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the cache key {}", path.display()))?;
    let key = decode_hex(text.trim()).context("the cache key is not hex")?;
    if key.len() < 32 {
        bail!("the cache key {} is shorter than 32 bytes", path.display());
    }
    Ok(key)
}

fn decode_hex(s: &str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .context("not a hex digit")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("salve-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn an_artifact_verifies_only_for_its_own_wasm_and_bytes() {
        let d = scratch("mac");
        let cache = DiskCache::open(&d.join("cache"), &d.join("key")).unwrap();
        let p = cache.path("aa", 1);
        let digest = sha256_hex(b"compiled");
        cache.write(&p, "aa", b"compiled", &digest).unwrap();
        assert_eq!(
            cache.read(&p, "aa").unwrap(),
            Some((b"compiled".to_vec(), digest.clone()))
        );
        // A tag written for other bytes (a digest that is not the artifact's) does not verify.
        cache
            .write(&p, "aa", b"compiled", &sha256_hex(b"other"))
            .unwrap();
        assert!(cache.read(&p, "aa").is_err(), "a tag for other bytes");
        cache.write(&p, "aa", b"compiled", &digest).unwrap();
        assert!(cache.read(&p, "bb").is_err(), "swapped for another fixer");
        std::fs::write(&p, b"patched!").unwrap();
        assert!(cache.read(&p, "aa").is_err(), "patched code");
        let meta = std::fs::metadata(d.join("cache")).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::metadata(d.join("key")).unwrap().mode() & 0o777,
            0o600
        );
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("perm");
        std::fs::create_dir_all(d.join("cache")).unwrap();
        std::fs::set_permissions(d.join("cache"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = DiskCache::open(&d.join("cache"), &d.join("key"))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("others can write"), "{err:#}");
        let _ = std::fs::remove_dir_all(d);
    }
}
