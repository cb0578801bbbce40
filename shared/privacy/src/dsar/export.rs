//! Access and portability exports, streamed to the exports bucket with S3 multipart uploads so
//! the worker's memory is one part per document whatever the subject's volume, and resumable:
//! an upload's id and its sent parts live in the checkpoint, and a part is only ever sent at a
//! target boundary, so a continuation starts the next part from the target after it.
//!
//! Documents:
//! - access (`access.json`): `{request_id, generated_at, facts, records: [...]}`, each record
//!   with its personal attributes by category ([`super::records::SubjectRecord::access_json`]);
//! - portability (`provided.json`, `provided.csv`): what the subject provided (contact details,
//!   form answers, consent choices; account: profile), JSON objects and a long-format CSV
//!   (`record,record_id,at,field,value`, RFC 4180, formula cells neutralised).

use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Access,
    ProvidedJson,
    ProvidedCsv,
}

impl DocKind {
    pub fn file_name(self) -> &'static str {
        match self {
            DocKind::Access => "access.json",
            DocKind::ProvidedJson => "provided.json",
            DocKind::ProvidedCsv => "provided.csv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            DocKind::ProvidedCsv => "text/csv; charset=utf-8",
            _ => "application/json",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentPart {
    pub number: i32,
    pub etag: String,
}

/// An open multipart upload, as committed in the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    pub doc: DocKind,
    pub key: String,
    pub upload_id: String,
    pub parts: Vec<SentPart>,
    /// Records written into the sent parts (the next record needs a separator when > 0).
    pub records: u64,
    /// CompleteMultipartUpload done.
    #[serde(default)]
    pub completed: bool,
}

/// One document being written: its committed state and the bytes not sent yet.
#[derive(Debug)]
pub struct Sink {
    pub state: UploadState,
    pub buf: Vec<u8>,
}

impl Sink {
    /// Resumes a document from its committed state; a document with nothing sent starts with
    /// its header again.
    pub fn resume(state: UploadState, header: &Value) -> Self {
        let mut buf = Vec::new();
        if state.parts.is_empty() && state.records == 0 {
            write_header(&mut buf, state.doc, header);
        }
        Self { state, buf }
    }

    /// Appends one JSON record (JSON documents).
    pub fn json_record(&mut self, v: &Value) -> anyhow::Result<()> {
        if self.state.records > 0 {
            self.buf.push(b',');
        }
        self.buf.push(b'\n');
        serde_json::to_writer(&mut self.buf, v)?;
        self.state.records += 1;
        Ok(())
    }

    /// Appends one CSV row.
    pub fn csv_row(&mut self, cells: &[&str]) {
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            csv_cell(&mut self.buf, c);
        }
        self.buf.extend_from_slice(b"\r\n");
        self.state.records += 1;
    }
}

fn write_header(buf: &mut Vec<u8>, doc: DocKind, header: &Value) {
    match doc {
        DocKind::ProvidedCsv => buf.extend_from_slice(b"record,record_id,at,field,value\r\n"),
        DocKind::Access | DocKind::ProvidedJson => {
            // The header object without its closing brace, then the records array.
            let mut head = serde_json::to_vec(header).unwrap_or_else(|_| b"{}".to_vec());
            head.pop();
            buf.extend_from_slice(&head);
            if head.len() > 1 {
                buf.push(b',');
            }
            let field = if doc == DocKind::Access {
                "\"records\":["
            } else {
                "\"provided\":["
            };
            buf.extend_from_slice(field.as_bytes());
        }
    }
}

fn trailer(doc: DocKind) -> &'static [u8] {
    match doc {
        DocKind::ProvidedCsv => b"",
        _ => b"\n]}\n",
    }
}

/// RFC 4180 quoting; a cell a spreadsheet would run as a formula is prefixed with `'`.
pub fn csv_cell(buf: &mut Vec<u8>, cell: &str) {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = formula || cell.contains([',', '"', '\n', '\r']);
    if quote {
        buf.push(b'"');
    }
    if formula {
        buf.push(b'\'');
    }
    for b in cell.bytes() {
        if b == b'"' {
            buf.push(b'"');
        }
        buf.push(b);
    }
    if quote {
        buf.push(b'"');
    }
}

/// S3 side of the exports.
#[derive(Debug, Clone)]
pub struct Exports {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    /// Part size: S3's minimum (5 MiB) for every part but the last.
    pub part_bytes: usize,
}

impl Exports {
    pub async fn begin(&self, doc: DocKind, key: String) -> anyhow::Result<UploadState> {
        let out = self
            .s3
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(doc.content_type())
            .content_disposition(format!("attachment; filename=\"{}\"", doc.file_name()))
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
            .await
            .context("CreateMultipartUpload")?;
        Ok(UploadState {
            doc,
            key,
            upload_id: out.upload_id.context("no upload id")?,
            parts: Vec::new(),
            records: 0,
            completed: false,
        })
    }

    /// Sends the sink's buffer as the next part when it holds at least a part (or `force`).
    /// Returns whether a part was sent.
    pub async fn flush(&self, sink: &mut Sink, force: bool) -> anyhow::Result<bool> {
        if sink.buf.is_empty() || (!force && sink.buf.len() < self.part_bytes) {
            return Ok(false);
        }
        let body = std::mem::take(&mut sink.buf);
        let number = sink.state.parts.len() as i32 + 1;
        let out = self
            .s3
            .upload_part()
            .bucket(&self.bucket)
            .key(&sink.state.key)
            .upload_id(&sink.state.upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .context("UploadPart")?;
        sink.state.parts.push(SentPart {
            number,
            etag: out.e_tag.unwrap_or_default(),
        });
        Ok(true)
    }

    /// Closes the document: the trailer, the last part, CompleteMultipartUpload.
    pub async fn finish(&self, mut sink: Sink) -> anyhow::Result<String> {
        sink.buf.extend_from_slice(trailer(sink.state.doc));
        if !sink.buf.is_empty() || sink.state.parts.is_empty() {
            self.flush(&mut sink, true).await?;
        }
        let parts = sink
            .state
            .parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number)
                    .e_tag(&p.etag)
                    .build()
            })
            .collect();
        self.s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&sink.state.key)
            .upload_id(&sink.state.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .context("CompleteMultipartUpload")?;
        Ok(sink.state.key)
    }

    pub async fn put_json(&self, key: &str, body: Vec<u8>) -> anyhow::Result<()> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .body(ByteStream::from(body))
            .send()
            .await
            .context("PutObject")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_documents_are_valid_whatever_the_record_count() {
        for n in [0, 1, 3] {
            let st = UploadState {
                doc: DocKind::Access,
                key: "k".into(),
                upload_id: "u".into(),
                parts: vec![],
                records: 0,
                completed: false,
            };
            let mut sink = Sink::resume(st, &json!({"request_id": "r1"}));
            for i in 0..n {
                sink.json_record(&json!({ "i": i })).unwrap();
            }
            sink.buf.extend_from_slice(trailer(DocKind::Access));
            let v: Value = serde_json::from_slice(&sink.buf).unwrap();
            assert_eq!(v["request_id"], "r1");
            assert_eq!(v["records"].as_array().unwrap().len(), n);
        }
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_neutralised() {
        let mut b = Vec::new();
        csv_cell(&mut b, "=HYPERLINK(\"x\")");
        assert_eq!(String::from_utf8(b).unwrap(), "\"'=HYPERLINK(\"\"x\"\")\"");
        let mut b = Vec::new();
        csv_cell(&mut b, "a,b");
        assert_eq!(String::from_utf8(b).unwrap(), "\"a,b\"");
    }
}
