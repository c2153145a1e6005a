//! Object storage for sealed recordings, behind one interface with two implementations: a local directory (the
//! default; also what `examroom dev` uses) and S3 through `aws-sdk-s3` (endpoint, region, bucket, path style,
//! static credentials or the AWS chain; multipart above a threshold; Object Lock retention and legal hold when
//! the bucket has it). Recordings arrive here already sealed: storage never sees their plaintext or keys. The same
//! store keeps the scheduled reports ([`Archive`]): signed JSON of audit facts, stored as they are.

use std::path::{Path, PathBuf};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode,
};

use crate::audit::evidence::ArchiveError;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("no such object")]
    NotFound,
    #[error("object storage unavailable: {0}")]
    Unavailable(String),
    #[error("object storage I/O: {0}")]
    Io(#[from] std::io::Error),
}

#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync {
    /// Stores the sealed file at `file` under `key` (the caller removes the file once this succeeds).
    async fn put_file(
        &self,
        key: &str,
        file: &Path,
        retain_until_ms: i64,
        legal_hold: bool,
    ) -> Result<(), ObjectError>;
    async fn len(&self, key: &str) -> Result<u64, ObjectError>;
    async fn read(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, ObjectError>;
    /// Removes the object and every version of it; returns how many were removed.
    async fn delete(&self, key: &str) -> Result<u32, ObjectError>;
    async fn set_legal_hold(&self, key: &str, on: bool) -> Result<(), ObjectError>;
}

/// The object store as the audit layer's evidence archive (scheduled reports): the same bucket or directory,
/// Object Lock retention where the bucket has it, never a legal hold.
pub struct Archive(pub std::sync::Arc<dyn ObjectStore>);

#[async_trait::async_trait]
impl crate::audit::evidence::Archive for Archive {
    async fn put(&self, key: &str, file: &Path, retain_until_ms: i64) -> Result<(), ArchiveError> {
        self.0
            .put_file(key, file, retain_until_ms, false)
            .await
            .map_err(|e| ArchiveError::Failed(e.to_string()))
    }

    async fn read(&self, key: &str, len: u64) -> Result<Vec<u8>, ArchiveError> {
        match self.0.read(key, 0, len).await {
            Ok(bytes) => Ok(bytes),
            Err(ObjectError::NotFound) => Err(ArchiveError::NotFound),
            Err(e) => Err(ArchiveError::Failed(e.to_string())),
        }
    }
}

/// A directory of sealed objects.
pub struct LocalObjects {
    dir: PathBuf,
}

impl LocalObjects {
    pub fn new(dir: &Path) -> Result<LocalObjects, std::io::Error> {
        std::fs::create_dir_all(dir)?;
        Ok(LocalObjects {
            dir: dir.to_path_buf(),
        })
    }
    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }
}

#[async_trait::async_trait]
impl ObjectStore for LocalObjects {
    async fn put_file(&self, key: &str, file: &Path, _: i64, _: bool) -> Result<(), ObjectError> {
        let tmp = self.dir.join(format!(".{key}.tmp"));
        tokio::fs::copy(file, &tmp).await?;
        tokio::fs::File::open(&tmp).await?.sync_all().await?;
        tokio::fs::rename(&tmp, self.path(key)).await?;
        Ok(())
    }

    async fn len(&self, key: &str) -> Result<u64, ObjectError> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ObjectError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, ObjectError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut f = match tokio::fs::File::open(self.path(key)).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ObjectError::NotFound),
            Err(e) => return Err(e.into()),
        };
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut buf = Vec::with_capacity(len as usize);
        f.take(len).read_to_end(&mut buf).await?;
        Ok(buf)
    }

    async fn delete(&self, key: &str) -> Result<u32, ObjectError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Ok(()) => Ok(1),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// A local directory has no holds of its own; the recordings table's flag governs retention.
    async fn set_legal_hold(&self, _: &str, _: bool) -> Result<(), ObjectError> {
        Ok(())
    }
}

/// S3 settings, from `[recording.s3]`.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub path_style: bool,
    /// Static credentials; `None` uses the AWS default chain (environment, profile, instance role).
    pub credentials: Option<(String, String)>,
    /// Set Object Lock retention (this mode) and legal hold on every object.
    pub object_lock: Option<String>,
    pub multipart_threshold: u64,
    pub part_size: u64,
}

pub struct S3Objects {
    client: Client,
    bucket: String,
    object_lock: Option<ObjectLockMode>,
    multipart_threshold: u64,
    part_size: u64,
}

fn unavailable(e: impl std::fmt::Display) -> ObjectError {
    ObjectError::Unavailable(e.to_string())
}

/// The SDK's HTTP client on rustls with ring (the crypto backend the rest of the broker uses).
pub fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

impl S3Objects {
    pub async fn new(s: &S3Settings) -> S3Objects {
        let http = http_client();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .region(aws_config::Region::new(s.region.clone()));
        if let Some((id, secret)) = &s.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "examroom-config",
            ));
        }
        let shared = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(s.path_style);
        if let Some(endpoint) = &s.endpoint {
            config = config.endpoint_url(endpoint.clone());
        }
        S3Objects {
            client: Client::from_conf(config.build()),
            bucket: s.bucket.clone(),
            object_lock: s.object_lock.as_deref().map(ObjectLockMode::from),
            multipart_threshold: s.multipart_threshold,
            part_size: s.part_size.max(5 * 1024 * 1024),
        }
    }

    fn hold(on: bool) -> ObjectLockLegalHoldStatus {
        if on {
            ObjectLockLegalHoldStatus::On
        } else {
            ObjectLockLegalHoldStatus::Off
        }
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Objects {
    async fn put_file(
        &self,
        key: &str,
        file: &Path,
        retain_until_ms: i64,
        legal_hold: bool,
    ) -> Result<(), ObjectError> {
        let size = tokio::fs::metadata(file).await?.len();
        let until = DateTime::from_millis(retain_until_ms);
        if size <= self.multipart_threshold {
            let mut put = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/octet-stream")
                .body(ByteStream::from_path(file).await.map_err(unavailable)?);
            if let Some(mode) = &self.object_lock {
                put = put
                    .object_lock_mode(mode.clone())
                    .object_lock_retain_until_date(until)
                    .object_lock_legal_hold_status(Self::hold(legal_hold));
            }
            put.send()
                .await
                .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
            return Ok(());
        }
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key);
        if let Some(mode) = &self.object_lock {
            create = create
                .object_lock_mode(mode.clone())
                .object_lock_retain_until_date(until)
                .object_lock_legal_hold_status(Self::hold(legal_hold));
        }
        let upload = create
            .send()
            .await
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_string();
        let result: Result<Vec<CompletedPart>, ObjectError> = async {
            use tokio::io::AsyncReadExt;
            let mut f = tokio::fs::File::open(file).await?;
            let mut parts = Vec::new();
            let mut number = 1;
            loop {
                let mut buf = Vec::with_capacity(self.part_size as usize);
                (&mut f).take(self.part_size).read_to_end(&mut buf).await?;
                if buf.is_empty() {
                    break;
                }
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(buf))
                    .send()
                    .await
                    .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_string))
                        .build(),
                );
                number += 1;
            }
            Ok(parts)
        }
        .await;
        match result {
            Ok(parts) => {
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                    .send()
                    .await
                    .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
                Ok(())
            }
            Err(e) => {
                // Best effort: an abandoned upload would otherwise hold storage until a lifecycle rule runs.
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(e)
            }
        }
    }

    async fn len(&self, key: &str) -> Result<u64, ObjectError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_not_found()) {
                    ObjectError::NotFound
                } else {
                    unavailable(aws_sdk_s3::error::DisplayErrorContext(e))
                }
            })?;
        Ok(head.content_length().unwrap_or(0).max(0) as u64)
    }

    async fn read(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, ObjectError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={}-{}", offset, offset + len - 1))
            .send()
            .await
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        let bytes = out.body.collect().await.map_err(unavailable)?.into_bytes();
        Ok(bytes.to_vec())
    }

    async fn delete(&self, key: &str) -> Result<u32, ObjectError> {
        let listed = self
            .client
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(key)
            .send()
            .await;
        let mut versions: Vec<Option<String>> = match listed {
            Ok(listed) => listed
                .versions()
                .iter()
                .filter(|v| v.key() == Some(key))
                .map(|v| v.version_id().map(str::to_string))
                .chain(
                    listed
                        .delete_markers()
                        .iter()
                        .filter(|m| m.key() == Some(key))
                        .map(|m| m.version_id().map(str::to_string)),
                )
                .collect(),
            // A server without versioning support has one object per key.
            Err(e) if e.code() == Some("NotImplemented") => Vec::new(),
            Err(e) => return Err(unavailable(aws_sdk_s3::error::DisplayErrorContext(e))),
        };
        if versions.is_empty() {
            versions.push(None);
        }
        let mut removed = 0;
        for version in versions {
            let mut del = self.client.delete_object().bucket(&self.bucket).key(key);
            if let Some(v) = &version {
                del = del.version_id(v);
            }
            if self.object_lock.is_some() {
                // Retention has ended when the sweep deletes; governance mode still needs the bypass.
                del = del.bypass_governance_retention(true);
            }
            del.send()
                .await
                .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
            removed += 1;
        }
        Ok(removed)
    }

    async fn set_legal_hold(&self, key: &str, on: bool) -> Result<(), ObjectError> {
        if self.object_lock.is_none() {
            return Ok(());
        }
        self.client
            .put_object_legal_hold()
            .bucket(&self.bucket)
            .key(key)
            .legal_hold(ObjectLockLegalHold::builder().status(Self::hold(on)).build())
            .send()
            .await
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }
}

/// The object store the configuration names.
pub async fn from_config(
    config: &crate::config::Config,
    work: &super::workdir::LocalStore,
) -> anyhow::Result<std::sync::Arc<dyn ObjectStore>> {
    use anyhow::Context;
    use secrecy::ExposeSecret;
    let r = &config.recording;
    if r.store != "s3" {
        return Ok(std::sync::Arc::new(
            LocalObjects::new(&work.objects_dir()).context("recording storage")?,
        ));
    }
    let s3 = r.s3.as_ref().context("recording.s3 is required")?;
    let credentials = match (&s3.access_key_id, &s3.secret_access_key_file) {
        (Some(id), Some(file)) => {
            let secret = crate::config::load::read_secret_file("recording.s3.secret_access_key_file", file)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Some((id.clone(), secret.expose_secret().trim().to_string()))
        }
        _ => None,
    };
    Ok(std::sync::Arc::new(
        S3Objects::new(&S3Settings {
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            bucket: s3.bucket.clone(),
            path_style: s3.path_style,
            credentials,
            object_lock: s3.object_lock_mode.clone(),
            multipart_threshold: s3.multipart_threshold_bytes,
            part_size: s3.part_size_bytes,
        })
        .await,
    ))
}
