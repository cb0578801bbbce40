//! Property tests of the CSV import reader: any bytes, and files a spreadsheet writes (quotes,
//! a byte-order mark, CRLF or LF, huge cells, cells a spreadsheet would run as formulas).
//!
//! Properties: nothing panics; a whole-file refusal is a 400 with its own code; otherwise every
//! non-blank row is either imported or rejected, with its spreadsheet row number and one
//! message per field named, never a cell's value; what a valid row holds is what its cells held;
//! a formula cell is kept as data and defused when exported again.

use lead_transfers::csv_import::{parse, Parsed, STAGE_MAX_CHARS, TEXT_MAX_CHARS};
use lead_transfers::export_writer::{ExportFormat, LeadWriter};
use proptest::prelude::*;
use shared_leads::transfers::ExportLead;

const MAX_ROWS: usize = 50;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A cell's text, weighted towards what CSV and spreadsheets trip on.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(
            prop_oneof![
                3 => any::<char>(),
                3 => prop::sample::select(vec![',', '"', '\n', '\r', ' ', '\t', '=', '+', '-', '@', '\u{FEFF}', 'é']),
                2 => proptest::char::range('a', 'z'),
            ],
            0..30,
        )
        .prop_map(|cs| cs.into_iter().collect()),
        // Cells a spreadsheet would run.
        1 => prop::sample::select(vec![
            "=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "=cmd|' /C calc'!A0",
        ])
        .prop_map(str::to_string),
        1 => "[a-z0-9._+-]{1,20}@[a-z0-9-]{1,12}\\.[a-z]{2,4}",
        1 => "\\+[1-9][0-9]{7,13}",
        1 => "[a-z0-9_-]{1,70}",
        // Huge cells.
        1 => (1usize..3).prop_map(|n| "x".repeat(n * 20_000)),
    ]
}

/// RFC 4180 quoting, as spreadsheets write it (always quoted, or only when needed).
fn write_cell(value: &str, always: bool) -> String {
    if always || value.contains([',', '"', '\n', '\r']) || value != value.trim() {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

#[derive(Debug, Clone)]
struct File {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    bom: bool,
    crlf: bool,
    quote_all: bool,
}

impl File {
    fn bytes(&self) -> Vec<u8> {
        let eol = if self.crlf { "\r\n" } else { "\n" };
        let mut out = String::new();
        if self.bom {
            out.push('\u{FEFF}');
        }
        out.push_str(&self.header.join(","));
        out.push_str(eol);
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|c| write_cell(c, self.quote_all)).collect();
            out.push_str(&cells.join(","));
            out.push_str(eol);
        }
        out.into_bytes()
    }
}

fn file() -> impl Strategy<Value = File> {
    let header =
        prop::sample::subsequence(vec!["email", "name", "phone", "company", "stage"], 1..=5)
            .prop_filter("an email or phone column", |h| {
                h.contains(&"email") || h.contains(&"phone")
            })
            .prop_shuffle();
    (header, any::<bool>(), any::<bool>(), any::<bool>()).prop_flat_map(
        |(header, bom, crlf, quote_all)| {
            let n = header.len();
            // Sometimes a row with another number of cells.
            let row = prop_oneof![
                9 => prop::collection::vec(cell(), n..=n),
                1 => prop::collection::vec(cell(), 0..n + 2),
            ];
            prop::collection::vec(row, 0..12).prop_map(move |rows| File {
                header: header.clone(),
                rows,
                bom,
                crlf,
                quote_all,
            })
        },
    )
}

/// Every rejection names known fields, and no message repeats a cell of the file.
fn assert_rejections_name_fields_not_values(p: &Parsed, cells: &[String]) {
    for r in &p.rejected {
        assert!(
            !r.errors.is_empty(),
            "row {} rejected without a reason",
            r.row
        );
        for (field, message) in &r.errors {
            assert!(
                ["email", "name", "phone", "company", "stage", "row"].contains(&field.as_str()),
                "unknown field {field:?}"
            );
            for c in cells
                .iter()
                .map(|c| c.trim())
                .filter(|c| c.chars().count() > 3)
            {
                assert!(
                    !message.contains(c),
                    "row {}: {field} repeats a cell",
                    r.row
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes: a parsed file, or a whole-file 400 with its own code.
    #[test]
    fn any_bytes_parse_or_are_refused_as_a_whole(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        match parse(&bytes, MAX_ROWS) {
            Ok(p) => {
                prop_assert!(std::str::from_utf8(&bytes).is_ok());
                prop_assert!(p.rows_total() as usize <= MAX_ROWS);
                assert_rejections_name_fields_not_values(&p, &[]);
            }
            Err(e) => {
                prop_assert_eq!(e.status(), 400);
                prop_assert!(["invalid_csv", "invalid_csv_header", "too_many_rows"].contains(&e.code()));
            }
        }
    }

    /// A file as a spreadsheet writes it: every non-blank row is imported or rejected, in order,
    /// with its spreadsheet row number; valid rows hold what their cells held.
    #[test]
    fn spreadsheet_files_account_for_every_row(f in file()) {
        let p = parse(&f.bytes(), MAX_ROWS).expect("a well-formed file with a valid header");
        // Spreadsheet rows: the header is row 1, each record one row whatever its line breaks.
        // A row written as an empty line (no cell, or one empty unquoted cell) is no row at all.
        let mut numbers = Vec::with_capacity(f.rows.len());
        let mut next = 2u64;
        for r in &f.rows {
            let empty_line = r.is_empty() || (r.len() == 1 && r[0].is_empty() && !f.quote_all);
            numbers.push((!empty_line).then(|| {
                next += 1;
                next - 1
            }));
        }
        let expected: Vec<u64> = f
            .rows
            .iter()
            .zip(&numbers)
            .filter(|(r, _)| !r.iter().all(|c| c.trim().is_empty()))
            .filter_map(|(_, n)| *n)
            .collect();
        let mut got: Vec<u64> = p.rows.iter().map(|r| r.row).chain(p.rejected.iter().map(|r| r.row)).collect();
        got.sort_unstable();
        prop_assert_eq!(got, expected);

        let cells: Vec<String> = f.rows.iter().flatten().cloned().collect();
        assert_rejections_name_fields_not_values(&p, &cells);
        for r in &p.rows {
            let i = numbers.iter().position(|n| *n == Some(r.row)).expect("a written row");
            let src = &f.rows[i];
            prop_assert_eq!(src.len(), f.header.len());
            let cell = |col: &str| f.header.iter().position(|h| *h == col).map(|i| src[i].trim());
            let text = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_string);
            prop_assert_eq!(r.contact.name.clone(), text(cell("name")));
            prop_assert_eq!(r.contact.company.clone(), text(cell("company")));
            prop_assert!(r.contact.email.is_some() || r.contact.phone.is_some());
            let email = cell("email").filter(|s| !s.is_empty()).map(|s| shared_core::domain::Email::parse(s).unwrap());
            prop_assert_eq!(r.contact.email.clone(), email);
            if let Some(n) = &r.contact.name {
                prop_assert!(n.chars().count() <= TEXT_MAX_CHARS);
            }
            prop_assert!(r.stage.len() <= STAGE_MAX_CHARS);
        }
    }

    /// A cell a spreadsheet would run as a formula is imported as data and, exported again,
    /// starts with a `'` so that the spreadsheet shows it instead of running it.
    #[test]
    fn formula_cells_are_kept_as_data_and_defused_on_export(
        lead in prop::sample::select(vec!['=', '+', '-', '@']),
        rest in "[A-Za-z0-9(),\"!|/ ]{0,40}",
        crlf in any::<bool>(),
    ) {
        let formula = format!("{lead}{rest}");
        let f = File {
            header: vec!["email", "company"],
            rows: vec![vec!["ana@example.com".into(), formula.clone()]],
            bom: false,
            crlf,
            quote_all: false,
        };
        let p = parse(&f.bytes(), MAX_ROWS).unwrap();
        let company = formula.trim();
        prop_assert_eq!(p.rows[0].contact.company.as_deref(), Some(company));

        let mut w = LeadWriter::new(ExportFormat::Csv, 1024);
        w.write(&ExportLead {
            id: "ld-1".into(),
            company: Some(company.to_string()),
            ..ExportLead::default()
        })
        .unwrap();
        let (bytes, _, _) = w.finish();
        let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
        let headers = reader.headers().unwrap().clone();
        let at = headers.iter().position(|h| h == "company").unwrap();
        let record = reader.records().next().unwrap().unwrap();
        prop_assert_eq!(&record[at], format!("'{company}"));
    }
}
