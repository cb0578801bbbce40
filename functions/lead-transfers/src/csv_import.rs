//! Reading an import file: a UTF-8 CSV whose header names its columns (`email`, `name`, `phone`,
//! `company`, and optionally `stage`, any order and case). Every row is checked on its own; a bad
//! row is reported (row number, one message per field, never the value) and the rest go on.
//!
//! Row numbers are the rows a spreadsheet shows: the header is row 1, the first data row 2, and
//! a cell spanning lines does not shift them (completely blank lines, which spreadsheets do not
//! write, are not counted). Rows whose cells are all empty (spreadsheets leave them at the end)
//! are skipped and not reported.

use std::collections::BTreeMap;

use shared_core::domain::{ContactDetails, Email, Phone};
use shared_core::error::{AppError, FieldErrors};
use shared_core::keys::FIRST_STAGE;

pub const COLUMNS: &[&str] = &["email", "name", "phone", "company", "stage"];
/// Same caps as a form's text fields.
pub const TEXT_MAX_CHARS: usize = 200;
pub const STAGE_MAX_CHARS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Email,
    Name,
    Phone,
    Company,
    Stage,
}

/// One valid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub row: u64,
    pub contact: ContactDetails,
    pub stage: String,
}

/// A row that was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub row: u64,
    pub errors: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub rows: Vec<Row>,
    pub rejected: Vec<Rejected>,
}

impl Parsed {
    pub fn rows_total(&self) -> u64 {
        (self.rows.len() + self.rejected.len()) as u64
    }
}

fn invalid_csv(message: &str) -> AppError {
    AppError::validation("invalid_csv", message)
}

fn header(record: &csv::StringRecord) -> Result<Vec<Column>, AppError> {
    let mut columns = Vec::with_capacity(record.len());
    let mut errors = FieldErrors::new();
    for (i, raw) in record.iter().enumerate() {
        // Named by position: if the first line is data rather than a header, its cells (an
        // email, a name) must not come back in the answer.
        let position = format!("column {}", i + 1);
        let col = match raw.trim().to_ascii_lowercase().as_str() {
            "email" => Column::Email,
            "name" => Column::Name,
            "phone" => Column::Phone,
            "company" => Column::Company,
            "stage" => Column::Stage,
            _ => {
                errors.insert(
                    position,
                    format!("is not a column imports accept ({})", COLUMNS.join(", ")),
                );
                continue;
            }
        };
        if columns.contains(&col) {
            errors.insert(position, "repeats a column".into());
        }
        columns.push(col);
    }
    if !columns.contains(&Column::Email) && !columns.contains(&Column::Phone) && errors.is_empty() {
        errors.insert(
            "email".into(),
            "the header needs an email or a phone column".into(),
        );
    }
    if errors.is_empty() {
        Ok(columns)
    } else {
        Err(AppError::Validation {
            code: "invalid_csv_header",
            message: "The first line must name the columns: email, name, phone, company, stage."
                .into(),
            fields: errors,
        })
    }
}

fn text(value: &str, max: usize) -> Result<String, String> {
    if value.chars().count() > max {
        return Err(format!("is longer than {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    Ok(value.to_string())
}

fn stage(value: &str) -> Result<String, String> {
    let ok = value.len() <= STAGE_MAX_CHARS
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "must be a stage id of up to {STAGE_MAX_CHARS} characters of a-z, 0-9, '-' or '_'"
        ))
    }
}

fn row(columns: &[Column], record: &csv::StringRecord, number: u64) -> Result<Row, Rejected> {
    let mut errors = BTreeMap::new();
    if record.len() != columns.len() {
        errors.insert(
            "row".to_string(),
            format!(
                "has {} cells; the header has {}",
                record.len(),
                columns.len()
            ),
        );
        return Err(Rejected {
            row: number,
            errors,
        });
    }
    let mut contact = ContactDetails::default();
    let mut stage_id = FIRST_STAGE.to_string();
    for (col, raw) in columns.iter().zip(record.iter()) {
        let value = raw.trim();
        if value.is_empty() {
            continue;
        }
        let (name, result): (&str, Result<(), String>) = match col {
            Column::Email => (
                "email",
                Email::parse(value)
                    .map(|e| contact.email = Some(e))
                    .map_err(str::to_string),
            ),
            Column::Phone => (
                "phone",
                Phone::parse(value)
                    .map(|p| contact.phone = Some(p))
                    .map_err(str::to_string),
            ),
            Column::Name => (
                "name",
                text(value, TEXT_MAX_CHARS).map(|v| contact.name = Some(v)),
            ),
            Column::Company => (
                "company",
                text(value, TEXT_MAX_CHARS).map(|v| contact.company = Some(v)),
            ),
            Column::Stage => ("stage", stage(value).map(|v| stage_id = v)),
        };
        if let Err(message) = result {
            errors.insert(name.to_string(), message);
        }
    }
    if contact.email.is_none()
        && contact.phone.is_none()
        && !errors.contains_key("email")
        && !errors.contains_key("phone")
    {
        let which = if columns.contains(&Column::Email) {
            "email"
        } else {
            "phone"
        };
        errors.insert(
            which.into(),
            "an email address or a phone number is required".into(),
        );
    }
    if errors.is_empty() {
        Ok(Row {
            row: number,
            contact,
            stage: stage_id,
        })
    } else {
        Err(Rejected {
            row: number,
            errors,
        })
    }
}

/// Reads a whole import file. A file that is not UTF-8 CSV with a valid header, or that has more
/// than `max_rows` rows, is refused as a whole (nothing is imported); otherwise every row is
/// either valid or rejected with its reasons.
pub fn parse(bytes: &[u8], max_rows: usize) -> Result<Parsed, AppError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| invalid_csv("The file is not UTF-8 text (save it as CSV UTF-8)."))?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let columns = header(
        reader
            .headers()
            .map_err(|_| invalid_csv("The file's first line is not a CSV header."))?,
    )?;
    let mut parsed = Parsed::default();
    let mut record = csv::StringRecord::new();
    let mut row_number = 1u64;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let _ = e;
                return Err(invalid_csv(&format!(
                    "The file is not valid CSV (near row {}).",
                    row_number + 1
                )));
            }
        }
        row_number += 1;
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if parsed.rows_total() as usize >= max_rows {
            return Err(AppError::Validation {
                code: "too_many_rows",
                message: format!("An import takes at most {max_rows} rows; split the file."),
                fields: FieldErrors::new(),
            });
        }
        match row(&columns, &record, row_number) {
            Ok(r) => parsed.rows.push(r),
            Err(r) => parsed.rejected.push(r),
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(s: &str) -> Parsed {
        parse(s.as_bytes(), 100).unwrap()
    }

    #[test]
    fn header_any_order_and_case_with_bom() {
        let p = parse_ok("\u{FEFF}Company, EMAIL ,Name\nAcme,Ana@Example.com,Ana Pop\n");
        assert_eq!(p.rows.len(), 1);
        let r = &p.rows[0];
        assert_eq!(r.row, 2);
        assert_eq!(
            r.contact.email.as_ref().unwrap().as_str(),
            "ana@example.com"
        );
        assert_eq!(r.contact.company.as_deref(), Some("Acme"));
        assert_eq!(r.stage, FIRST_STAGE);
    }

    #[test]
    fn bad_rows_are_reported_per_field_without_values() {
        let p = parse_ok(
            "email,name,phone,company,stage\n\
             ok@example.com,Ok,,,qualified\n\
             not-an-email,Bob,0712,,\n\
             ,,,Acme,\n\
             x@example.com,,,,Bad Stage\n\
             a@example.com,too,many,cells,here,extra\n\
             ,,,,\n",
        );
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.rows[0].stage, "qualified");
        assert_eq!(p.rows_total(), 5, "the empty row is not counted");
        let rows: Vec<u64> = p.rejected.iter().map(|r| r.row).collect();
        assert_eq!(rows, [3, 4, 5, 6]);
        assert_eq!(
            p.rejected[0].errors.keys().collect::<Vec<_>>(),
            ["email", "phone"]
        );
        assert_eq!(
            p.rejected[1].errors["email"],
            "an email address or a phone number is required"
        );
        assert!(p.rejected[2].errors.contains_key("stage"));
        assert!(p.rejected[3].errors.contains_key("row"));
        let all = format!("{:?}", p.rejected);
        for value in ["not-an-email", "Bob", "0712", "Bad Stage", "extra"] {
            assert!(!all.contains(value), "{value} echoed");
        }
    }

    #[test]
    fn quoted_cells_commas_and_newlines() {
        let p = parse_ok("email,name,company\nq@example.com,\"Pop, Ana\",\"Acme \"\"Ltd\"\"\"\n");
        assert_eq!(p.rows[0].contact.name.as_deref(), Some("Pop, Ana"));
        assert_eq!(p.rows[0].contact.company.as_deref(), Some("Acme \"Ltd\""));
        let p = parse_ok("email,name\nq@example.com,\"two\nlines\"\n");
        assert!(
            p.rejected[0].errors.contains_key("name"),
            "control characters"
        );
    }

    #[test]
    fn whole_file_refusals() {
        let err = |s: &[u8]| parse(s, 100).unwrap_err().code();
        assert_eq!(err(b"email,name\n\xff\xfe,x\n"), "invalid_csv");
        assert_eq!(err(b"email,shoe_size\na@b.co,42\n"), "invalid_csv_header");
        assert_eq!(err(b"name,company\nAna,Acme\n"), "invalid_csv_header");
        assert_eq!(err(b"email,email\na@b.co,a@b.co\n"), "invalid_csv_header");
        let many: String = std::iter::once("email\n".to_string())
            .chain((0..101).map(|i| format!("p{i}@example.com\n")))
            .collect();
        assert_eq!(err(many.as_bytes()), "too_many_rows");
    }

    #[test]
    fn a_data_line_taken_for_a_header_is_not_echoed() {
        let e = parse(b"ana@example.com,Ana Pop\n", 10).unwrap_err();
        let body = shared_core::http::error_body(&e).to_string();
        assert!(
            !body.contains("ana@example.com") && !body.contains("Ana Pop"),
            "{body}"
        );
    }

    #[test]
    fn row_numbers_are_spreadsheet_rows_whatever_the_line_endings() {
        for text in [
            "email,name\r\nbad,A\r\n\"x@example.com\",\"two\r\nlines\"\r\nalso-bad,B\r\n",
            "email,name\nbad,A\n\"x@example.com\",\"two\nlines\"\nalso-bad,B\n",
        ] {
            let p = parse_ok(text);
            let rows: Vec<u64> = p.rejected.iter().map(|r| r.row).collect();
            assert_eq!(rows, [2, 3, 4], "{text:?}");
        }
    }

    #[test]
    fn phone_only_rows() {
        let p = parse_ok("phone,name\n+40 712 345 678,Ana\n");
        assert_eq!(
            p.rows[0].contact.phone.as_ref().unwrap().as_str(),
            "+40712345678"
        );
    }
}
