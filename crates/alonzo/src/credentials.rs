//! Root credentials: generated on first start into `<data-dir>/credentials` (mode 0600, in
//! the AWS shared-credentials format so the AWS CLI and SDKs can read the file directly), and
//! the small INI reader client commands use for that file and `~/.aws/{credentials,config}`.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use rand::Rng;

/// An access key pair.
#[derive(Clone)]
pub(crate) struct KeyPair {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// File name of the generated credentials inside the data directory.
pub(crate) const FILE_NAME: &str = "credentials";

/// Reads `<data_dir>/credentials`, or generates it. Returns the pair and whether it is new.
pub(crate) fn load_or_generate(data_dir: &Path) -> anyhow::Result<(KeyPair, bool)> {
    let path = data_dir.join(FILE_NAME);
    if path.exists() {
        let pair = read_profile(&path, "default")?.with_context(|| {
            format!("{} has no [default] profile with both keys", path.display())
        })?;
        return Ok((pair, false));
    }
    let pair = generate();
    let text = format!(
        "# Root credentials of this Alonzo server, generated on first start.\n# Use with: AWS_SHARED_CREDENTIALS_FILE={}\n[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        path.display(),
        pair.access_key_id,
        pair.secret_access_key
    );
    write_private(&path, text.as_bytes())?;
    Ok((pair, true))
}

/// Writes a file readable only by its owner, durably (temporary file, fsync, rename).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn generate() -> KeyPair {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rngs::OsRng;
    let pick = |set: &[u8], n: usize, rng: &mut rand::rngs::OsRng| -> String {
        (0..n).map(|_| char::from(set[rng.gen_range(0..set.len())])).collect()
    };
    KeyPair {
        access_key_id: format!("AKAL{}", pick(UPPER, 16, &mut rng)),
        secret_access_key: pick(SECRET, 40, &mut rng),
    }
}

/// Sections of an INI file: `[name]` → key → value. `[profile x]` headers (config file
/// style) are stored under `x`.
pub(crate) fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().trim_start_matches("profile ").trim().to_owned();
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .insert(key.trim().to_owned(), value.trim().to_owned());
        }
    }
    out
}

/// The key pair of `profile` in a shared-credentials file, if the file has one.
pub(crate) fn read_profile(path: &Path, profile: &str) -> anyhow::Result<Option<KeyPair>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let sections = parse_ini(&text);
    Ok(sections.get(profile).and_then(|s| {
        Some(KeyPair {
            access_key_id: s.get("aws_access_key_id")?.clone(),
            secret_access_key: s.get("aws_secret_access_key")?.clone(),
        })
    }))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn generates_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (first, new) = load_or_generate(dir.path()).unwrap();
        assert!(new);
        assert_eq!(first.access_key_id.len(), 20);
        assert_eq!(first.secret_access_key.len(), 40);
        let mode = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, new) = load_or_generate(dir.path()).unwrap();
        assert!(!new);
        assert_eq!(again.secret_access_key, first.secret_access_key);
    }

    #[test]
    fn ini_profiles() {
        let s = parse_ini("[default]\na = 1\n# c\n[profile dev]\nb=2\n");
        assert_eq!(s["default"]["a"], "1");
        assert_eq!(s["dev"]["b"], "2");
    }

    #[test]
    fn debug_hides_the_secret() {
        let pair = KeyPair { access_key_id: "AK".into(), secret_access_key: "SECRET".into() };
        assert!(!format!("{pair:?}").contains("SECRET"));
    }
}
