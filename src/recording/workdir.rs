//! The broker's recording work directory on local disk: sealed spools while recording, sealed objects waiting in
//! the outbox for upload, and the default object store's directory. Nothing here is ever plaintext.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The broker's recording work directory: sealed spools while recording, sealed objects waiting for upload.
#[derive(Clone)]
pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    pub fn new(dir: &Path) -> Result<LocalStore, std::io::Error> {
        std::fs::create_dir_all(dir.join("spool"))?;
        std::fs::create_dir_all(dir.join("outbox"))?;
        Ok(LocalStore {
            dir: dir.to_path_buf(),
        })
    }
    pub fn spool_path(&self, id: &str) -> PathBuf {
        self.dir.join("spool").join(format!("{id}.spool"))
    }
    /// The next segment's spool while a cut puts it in place.
    pub fn next_spool_path(&self, id: &str) -> PathBuf {
        self.dir.join("spool").join(format!("{id}.next"))
    }
    /// A closed segment's spool, waiting to be resealed as the segment's object.
    pub fn closed_spool_path(&self, id: &str, seq: i64) -> PathBuf {
        self.dir.join("spool").join(format!("{id}.{seq}.closed"))
    }
    /// The closed spools of recording `id` on this disk, by segment number.
    pub fn closed_spools(&self, id: &str) -> Vec<(i64, PathBuf)> {
        let prefix = format!("{id}.");
        let mut out: Vec<(i64, PathBuf)> = std::fs::read_dir(self.dir.join("spool"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let seq = name
                    .strip_prefix(&prefix)?
                    .strip_suffix(".closed")?
                    .parse()
                    .ok()?;
                Some((seq, e.path()))
            })
            .collect();
        out.sort();
        out
    }
    pub fn outbox_path(&self, key: &str) -> PathBuf {
        self.dir.join("outbox").join(key)
    }
    /// The default object store's directory.
    pub fn objects_dir(&self) -> PathBuf {
        self.dir.join("objects")
    }
    /// Writes a sealed object to the outbox atomically (temporary name, then rename).
    pub fn put_outbox(&self, key: &str, sealed: &[u8]) -> Result<(), std::io::Error> {
        let tmp = self.dir.join("outbox").join(format!(".{key}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(sealed)?;
        f.sync_all()?;
        std::fs::rename(tmp, self.outbox_path(key))
    }
}
