//! A durable copy of the audit log in S3, for Lambda: its only writable disk is `/tmp`, which
//! dies with the execution environment, so a record fsynced there is not yet safe. After each
//! batch the records written since the last successful upload go to S3 as one object, and the
//! batch's messages are acknowledged only if that upload succeeded. A failed upload is retried
//! with the next batch (it always ships everything not yet shipped), so no record is skipped.
//!
//! Objects are named `<prefix><chain>/<first sequence>-<last sequence>.jsonl`, where `<chain>` is
//! the start of the first record's hash: each execution environment writes its own chain, and
//! every object is a run of complete, hash-linked lines that `salve audit verify` can check once
//! the objects of one chain are concatenated in name order.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

use crate::audit::record_position;
use crate::aws::{describe_aws_error, to_aws_error};

pub struct S3AuditSink {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    log_path: PathBuf,
    /// Bytes of the local log already in S3. Held across the upload so two batches finishing
    /// together ship one object, not two overlapping ones.
    shipped: tokio::sync::Mutex<u64>,
}

/// `s3://bucket/prefix` → (bucket, prefix ending in `/` or empty).
pub fn parse_s3_url(url: &str) -> Result<(String, String)> {
    let Some(rest) = url.strip_prefix("s3://") else {
        bail!("the audit sink {url:?} is not an s3://bucket/prefix URL");
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("the audit sink {url:?} names no bucket");
    }
    let mut prefix = prefix.to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok((bucket.to_string(), prefix))
}

impl S3AuditSink {
    /// `client` must use the platform's own credentials: the sink is salve's, not a customer's.
    pub fn new(client: aws_sdk_s3::Client, url: &str, log_path: &Path) -> Result<S3AuditSink> {
        let (bucket, prefix) = parse_s3_url(url)?;
        Ok(S3AuditSink {
            client,
            bucket,
            prefix,
            log_path: log_path.to_path_buf(),
            shipped: tokio::sync::Mutex::new(0),
        })
    }

    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// Uploads every complete record written since the last successful flush, and returns the
    /// object's key (`None` when there was nothing new).
    pub async fn flush(&self) -> Result<Option<String>> {
        let mut shipped = self.shipped.lock().await;
        let (pending, chain) = self.pending(*shipped)?;
        if pending.is_empty() {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&pending);
        let sequence = |line: Option<&str>| record_position(line?).map(|(sequence, _)| sequence);
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let first =
            sequence(lines.next()).context("the audit log's pending records have no sequence")?;
        let last = sequence(text.lines().rfind(|l| !l.trim().is_empty())).unwrap_or(first);
        let key = format!("{}{chain}/{first:012}-{last:012}.jsonl", self.prefix);
        // Never overwrite: an object of the chain, once written, is evidence.
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .if_none_match("*")
            .content_type("application/x-ndjson")
            .body(ByteStream::from(pending.clone()))
            .send()
            .await;
        if let Err(e) = put {
            let error = to_aws_error(e);
            // The same object already there is an earlier upload whose answer was lost; other
            // bytes under the same name are not ours to replace.
            let same = error.code == "PreconditionFailed"
                && self.existing(&key).await.as_deref() == Some(&pending[..]);
            if !same {
                return Err(anyhow::anyhow!(describe_aws_error(&error))).with_context(|| {
                    format!(
                        "uploading audit records to s3://{}/{key} (never overwritten)",
                        self.bucket
                    )
                });
            }
        }
        *shipped += pending.len() as u64;
        self.remember(*shipped, &pending);
        Ok(Some(key))
    }

    /// Where the shipped position is kept, beside the log: Lambda keeps `/tmp` across a crash
    /// or a timeout, and a restarted process must not ship what is already in the sink.
    fn position_path(&self) -> PathBuf {
        let mut name = self.log_path.as_os_str().to_owned();
        name.push(".shipped");
        PathBuf::from(name)
    }

    /// Records how far the log is shipped, with the hash of the last shipped record, so a stale
    /// position (a log that was replaced) is recognised. A failure to write it is only logged:
    /// the next start then reads the position from the sink instead.
    fn remember(&self, offset: u64, shipped_bytes: &[u8]) {
        let text = String::from_utf8_lossy(shipped_bytes);
        let hash = text
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .and_then(record_position)
            .map(|(_, hash)| hash);
        let position = serde_json::json!({ "offset": offset, "record_hash": hash });
        let path = self.position_path();
        let tmp = path.with_extension("shipped.tmp");
        let written = std::fs::write(&tmp, position.to_string())
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), "could not record the shipped position: {e}");
        }
    }

    /// Finds where a previous process (in this environment) stopped shipping: the position file
    /// beside the log if it still matches the log, else the newest object of this log's chain
    /// in the sink. Also proves the sink's bucket is there. Call once, at init.
    pub async fn resume(&self) -> Result<u64> {
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .max_keys(1)
            .send()
            .await;
        if let Err(e) = listed {
            return Err(anyhow::anyhow!(describe_aws_error(&to_aws_error(e)))).with_context(|| {
                format!(
                    "the audit sink {} cannot be listed (does the bucket exist, and may this role list it?)",
                    self.location()
                )
            });
        }
        let text = match std::fs::read(&self.log_path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", self.log_path.display()))
            }
        };
        let mut offset = 0u64;
        if !text.is_empty() {
            offset = match self.remembered(&text) {
                Some(o) => o,
                None => self.shipped_per_sink(&text).await?,
            };
        }
        *self.shipped.lock().await = offset;
        if offset > 0 {
            tracing::info!(
                offset,
                "resuming the audit sink after records already shipped"
            );
        }
        Ok(offset)
    }

    fn remembered(&self, log: &str) -> Option<u64> {
        let position: Value =
            serde_json::from_str(&std::fs::read_to_string(self.position_path()).ok()?).ok()?;
        let offset = usize::try_from(position.get("offset")?.as_u64()?).ok()?;
        let hash = position.get("record_hash")?.as_str()?;
        let shipped = log.get(..offset)?;
        let last = shipped.lines().rfind(|l| !l.trim().is_empty())?;
        let last_hash = record_position(last).map(|(_, h)| h);
        (shipped.ends_with('\n') && last_hash.as_deref() == Some(hash)).then_some(offset as u64)
    }

    /// The end of the newest record of this log's chain that the sink already holds.
    async fn shipped_per_sink(&self, log: &str) -> Result<u64> {
        let chain = chain_name(log.lines().next().unwrap_or(""));
        let prefix = format!("{}{chain}/", self.prefix);
        let mut last_shipped: Option<u64> = None;
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!(describe_aws_error(&to_aws_error(e))))
                .with_context(|| format!("listing s3://{}/{prefix}", self.bucket))?;
            for object in page.contents() {
                let last = object
                    .key()
                    .and_then(|k| k.strip_prefix(&prefix))
                    .and_then(|k| k.strip_suffix(".jsonl"))
                    .and_then(|k| k.split_once('-'))
                    .and_then(|(_, last)| last.parse::<u64>().ok());
                last_shipped = last_shipped.max(last);
            }
            match page.next_continuation_token() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        let Some(last) = last_shipped else {
            return Ok(0);
        };
        let mut offset = 0u64;
        for line in log.split_inclusive('\n') {
            offset += line.len() as u64;
            if record_position(line).map(|(sequence, _)| sequence) == Some(last) {
                return Ok(offset);
            }
        }
        anyhow::bail!(
            "the audit sink holds record {last} of chain {chain}, which the local log {} does not: refusing to ship a diverging copy",
            self.log_path.display()
        )
    }

    async fn existing(&self, key: &str) -> Option<Vec<u8>> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        out.body.collect().await.ok().map(|b| b.to_vec())
    }

    /// The complete lines after `from`, and the chain's name.
    fn pending(&self, from: u64) -> Result<(Vec<u8>, String)> {
        let mut file = std::fs::File::open(&self.log_path)
            .with_context(|| format!("reading audit log {}", self.log_path.display()))?;
        let mut first_line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&file), &mut first_line)
            .with_context(|| format!("reading audit log {}", self.log_path.display()))?;
        let chain = chain_name(first_line.trim_end());
        file.seek(SeekFrom::Start(from))
            .with_context(|| format!("reading audit log {}", self.log_path.display()))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .with_context(|| format!("reading audit log {}", self.log_path.display()))?;
        // Only whole lines: a record being written right now goes with the next flush.
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        bytes.truncate(complete);
        Ok((bytes, chain))
    }
}

impl crate::pipeline::IntentShipper for S3AuditSink {
    fn ship(&self) -> crate::capabilities::BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.flush().await.map(|_| ()) })
    }
}

/// A chain's name in the sink: the start of its first record's hash (`empty` for no record).
fn chain_name(first_line: &str) -> String {
    record_position(first_line)
        .map(|(_, hash)| hash.chars().take(16).collect())
        .unwrap_or_else(|| "empty".into())
}

#[cfg(test)]
mod tests {
    use super::parse_s3_url;

    #[test]
    fn sink_urls() {
        assert_eq!(
            parse_s3_url("s3://audit-bucket/salve/prod").unwrap(),
            ("audit-bucket".to_string(), "salve/prod/".to_string())
        );
        assert_eq!(
            parse_s3_url("s3://audit-bucket").unwrap(),
            ("audit-bucket".to_string(), String::new())
        );
        assert_eq!(
            parse_s3_url("audit-bucket/x").unwrap_err().to_string(),
            "the audit sink \"audit-bucket/x\" is not an s3://bucket/prefix URL"
        );
        assert_eq!(
            parse_s3_url("s3:///x").unwrap_err().to_string(),
            "the audit sink \"s3:///x\" names no bucket"
        );
    }
}
