//! Serializes exported leads, one at a time, into a byte buffer that the export hands to S3
//! part by part: the memory an export needs is one part and one page of leads, whatever the
//! number of leads.
//!
//! CSV: RFC 4180 (comma, CRLF, quotes doubled), UTF-8, a header row. A cell that a spreadsheet
//! would run as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) is
//! prefixed with `'` (OWASP "CSV injection"), except a phone number in E.164, which is data.
//! JSON: one array of objects; absent fields are left out.

use shared_leads::transfers::ExportLead;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }

    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
        }
    }
}

pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "email",
    "phone",
    "name",
    "company",
    "stage",
    "owner_user_id",
    "source_form_id",
    "created_at",
];

pub struct LeadWriter {
    format: ExportFormat,
    buf: Vec<u8>,
    count: u64,
    bytes: u64,
}

impl LeadWriter {
    /// `capacity`: the part size and some slack, so the buffer is allocated once per part.
    pub fn new(format: ExportFormat, capacity: usize) -> Self {
        let mut w = Self {
            format,
            buf: Vec::with_capacity(capacity),
            count: 0,
            bytes: 0,
        };
        match format {
            ExportFormat::Csv => {
                w.buf.extend_from_slice(CSV_COLUMNS.join(",").as_bytes());
                w.buf.extend_from_slice(b"\r\n");
            }
            ExportFormat::Json => w.buf.push(b'['),
        }
        w
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Bytes produced so far (taken parts included).
    pub fn bytes(&self) -> u64 {
        self.bytes + self.buf.len() as u64
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn write(&mut self, lead: &ExportLead) -> anyhow::Result<()> {
        match self.format {
            ExportFormat::Csv => {
                let cells = [
                    Some(lead.id.as_str()),
                    lead.email.as_deref(),
                    lead.phone.as_deref(),
                    lead.name.as_deref(),
                    lead.company.as_deref(),
                    lead.stage.as_deref(),
                    lead.owner_user_id.as_deref(),
                    lead.source_form_id.as_deref(),
                    lead.created_at.as_deref(),
                ];
                for (i, cell) in cells.into_iter().enumerate() {
                    if i > 0 {
                        self.buf.push(b',');
                    }
                    let is_phone = CSV_COLUMNS[i] == "phone";
                    csv_cell(&mut self.buf, cell.unwrap_or_default(), is_phone);
                }
                self.buf.extend_from_slice(b"\r\n");
            }
            ExportFormat::Json => {
                if self.count > 0 {
                    self.buf.push(b',');
                }
                self.buf.push(b'\n');
                serde_json::to_writer(&mut self.buf, lead)?;
            }
        }
        self.count += 1;
        Ok(())
    }

    /// The buffered bytes when there are at least `min` of them; the buffer starts over empty
    /// (its memory goes with the part, and is allocated again by [`LeadWriter::reserve`]).
    pub fn take_part(&mut self, min: usize) -> Option<Vec<u8>> {
        if self.buf.len() < min {
            return None;
        }
        let part = std::mem::take(&mut self.buf);
        self.bytes += part.len() as u64;
        Some(part)
    }

    /// Allocates the next part's buffer (after the previous part was sent and freed).
    pub fn reserve(&mut self, capacity: usize) {
        self.buf.reserve(capacity);
    }

    /// Closes the document and returns what is left, the lead count and the document's size.
    pub fn finish(mut self) -> (Vec<u8>, u64, u64) {
        if self.format == ExportFormat::Json {
            self.buf.extend_from_slice(b"\n]\n");
        }
        let total = self.bytes();
        (self.buf, self.count, total)
    }
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

fn csv_cell(out: &mut Vec<u8>, value: &str, is_phone: bool) {
    let formula =
        value.starts_with(['=', '+', '-', '@', '\t', '\r']) && !(is_phone && is_e164(value));
    let quote = formula || value.contains([',', '"', '\n', '\r']) || value != value.trim();
    if quote {
        out.push(b'"');
    }
    if formula {
        out.push(b'\'');
    }
    for b in value.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    if quote {
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(id: &str) -> ExportLead {
        ExportLead {
            id: id.into(),
            email: Some("ana@example.com".into()),
            phone: Some("+40712345678".into()),
            name: Some("Pop, \"Ana\"".into()),
            company: Some("=HYPERLINK(\"http://x\")".into()),
            ..ExportLead::default()
        }
    }

    #[test]
    fn csv_quotes_escapes_and_defuses_formulas() {
        let mut w = LeadWriter::new(ExportFormat::Csv, 1024);
        w.write(&lead("ld-1")).unwrap();
        let (bytes, count, total) = w.finish();
        assert_eq!(total, bytes.len() as u64);
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(count, 1);
        assert_eq!(
            text,
            "id,email,phone,name,company,stage,owner_user_id,source_form_id,created_at\r\n\
             ld-1,ana@example.com,+40712345678,\"Pop, \"\"Ana\"\"\",\"'=HYPERLINK(\"\"http://x\"\")\",,,,\r\n"
        );
        // and it reads back as the same cells
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let rec = r.records().next().unwrap().unwrap();
        assert_eq!(&rec[3], "Pop, \"Ana\"");
        assert_eq!(&rec[4], "'=HYPERLINK(\"http://x\")");
    }

    #[test]
    fn json_is_one_valid_array() {
        for n in [0, 1, 3] {
            let mut w = LeadWriter::new(ExportFormat::Json, 1024);
            for i in 0..n {
                w.write(&lead(&format!("ld-{i}"))).unwrap();
            }
            let (bytes, _, _) = w.finish();
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(v.as_array().unwrap().len(), n);
            if n > 0 {
                assert_eq!(
                    v[0]["company"], "=HYPERLINK(\"http://x\")",
                    "JSON is data, unchanged"
                );
                assert!(v[0].get("stage").is_none());
            }
        }
    }

    #[test]
    fn parts_are_taken_only_when_full_and_concatenate_to_the_document() {
        let mut w = LeadWriter::new(ExportFormat::Json, 64);
        let mut parts = Vec::new();
        for i in 0..50 {
            w.write(&lead(&format!("ld-{i}"))).unwrap();
            if let Some(p) = w.take_part(1000) {
                assert!(p.len() >= 1000);
                parts.push(p);
                w.reserve(64);
            }
        }
        assert!(parts.len() > 2);
        let (last, count, total) = w.finish();
        assert_eq!(count, 50);
        let mut all: Vec<u8> = parts.concat();
        assert_eq!(all.len() as u64 + last.len() as u64, total);
        all.extend(last);
        let v: serde_json::Value = serde_json::from_slice(&all).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 50);
    }
}
