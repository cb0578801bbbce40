//! What may be attached to a lead: a short allow-list of document and image types, each with its
//! extensions. Everything else is refused, whether by its content type or by its name: no HTML,
//! SVG, scripts, executables or archives (which can carry them), no macro-enabled Office
//! formats, and no name that hides one type behind another (`invoice.pdf.exe`, `cv.exe.pdf`,
//! right-to-left override tricks, trailing dots).

use shared_core::error::FieldErrors;

/// Allowed content types and the extensions that go with each.
pub const ALLOWED: &[(&str, &[&str])] = &[
    ("application/pdf", &["pdf"]),
    ("image/png", &["png"]),
    ("image/jpeg", &["jpg", "jpeg"]),
    ("image/gif", &["gif"]),
    ("image/webp", &["webp"]),
    ("text/plain", &["txt"]),
    ("text/csv", &["csv"]),
    ("application/msword", &["doc"]),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        &["docx"],
    ),
    ("application/vnd.ms-excel", &["xls"]),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        &["xlsx"],
    ),
];

/// Extensions of things that run, render active content or pack other files. Seen anywhere in
/// a name, not just at its end.
const DANGEROUS: &[&str] = &[
    "exe",
    "com",
    "bat",
    "cmd",
    "msi",
    "msp",
    "mst",
    "scr",
    "pif",
    "cpl",
    "dll",
    "sys",
    "drv",
    "ocx",
    "vb",
    "vbs",
    "vbe",
    "js",
    "jse",
    "mjs",
    "cjs",
    "ws",
    "wsf",
    "wsc",
    "wsh",
    "ps1",
    "ps1xml",
    "psm1",
    "psd1",
    "sh",
    "bash",
    "zsh",
    "ksh",
    "csh",
    "fish",
    "py",
    "pyc",
    "pyw",
    "pl",
    "rb",
    "php",
    "phtml",
    "jsp",
    "asp",
    "aspx",
    "cgi",
    "jar",
    "class",
    "apk",
    "app",
    "ipa",
    "deb",
    "rpm",
    "dmg",
    "pkg",
    "iso",
    "img",
    "bin",
    "run",
    "elf",
    "out",
    "lnk",
    "url",
    "reg",
    "inf",
    "hta",
    "htm",
    "html",
    "xhtml",
    "shtml",
    "mht",
    "mhtml",
    "svg",
    "svgz",
    "xml",
    "xsl",
    "swf",
    "chm",
    "zip",
    "zipx",
    "rar",
    "7z",
    "tar",
    "gz",
    "tgz",
    "bz2",
    "xz",
    "cab",
    "arj",
    "docm",
    "dotm",
    "xlsm",
    "xltm",
    "xlam",
    "pptm",
    "potm",
    "ppam",
    "sldm",
    "scf",
    "gadget",
    "msc",
    "application",
    "appref-ms",
    "library-ms",
    "settingcontent-ms",
];

pub const MAX_FILENAME_CHARS: usize = 255;

/// An attachment that passed the rules: its name and its canonical content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub filename: String,
    pub content_type: &'static str,
}

fn types_listed() -> &'static str {
    "PDF, PNG, JPEG, GIF, WebP, plain text, CSV, Word (doc, docx) or Excel (xls, xlsx)"
}

/// Characters that change how a name is displayed without being visible (bidi overrides,
/// zero-width characters): they make `exe.pdf` look like `pdf.exe` and the other way round.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{061C}' | '\u{180E}')
}

fn filename_error(name: &str, content_type: Option<&'static str>) -> Option<String> {
    if name.trim().is_empty() {
        return Some("is required".into());
    }
    if name.chars().count() > MAX_FILENAME_CHARS {
        return Some(format!("is longer than {MAX_FILENAME_CHARS} characters"));
    }
    if name
        .chars()
        .any(|c| c.is_control() || is_invisible_format(c))
    {
        return Some("contains control or invisible formatting characters".into());
    }
    if name.contains(['/', '\\']) || name == "." || name == ".." {
        return Some("must be a file name, not a path".into());
    }
    if name != name.trim() || name.ends_with('.') {
        return Some("must not start or end with spaces or end with a dot".into());
    }
    let segments: Vec<&str> = name.split('.').collect();
    let [base, inner @ .., last] = segments.as_slice() else {
        return Some(format!("needs an extension ({})", types_listed()));
    };
    if base.trim().is_empty() {
        return Some("needs a name before the extension".into());
    }
    let ext = last.to_ascii_lowercase();
    let allowed_anywhere = ALLOWED.iter().any(|(_, exts)| exts.contains(&ext.as_str()));
    if !allowed_anywhere {
        return Some(format!(
            "has an extension that is not allowed ({})",
            types_listed()
        ));
    }
    // `report.pdf.exe` never gets here (its last extension is refused); `cv.exe.pdf` or
    // `scan.html.pdf` do: a known extension inside the name is a disguise.
    let disguised = inner.iter().any(|seg| {
        let seg = seg.trim().to_ascii_lowercase();
        DANGEROUS.contains(&seg.as_str())
            || ALLOWED.iter().any(|(_, exts)| exts.contains(&seg.as_str()))
    });
    if disguised {
        return Some("has a double extension".into());
    }
    if let Some(ct) = content_type {
        let matches = ALLOWED
            .iter()
            .any(|(t, exts)| *t == ct && exts.contains(&ext.as_str()));
        if !matches {
            return Some("has an extension that does not match the content type".into());
        }
    }
    None
}

/// The canonical allowed content type for what a client sent (case-insensitive; parameters
/// such as `charset` are not accepted: the upload is signed for the exact type returned).
fn content_type(raw: &str) -> Option<&'static str> {
    let t = raw.trim().to_ascii_lowercase();
    ALLOWED.iter().map(|(ct, _)| *ct).find(|ct| *ct == t)
}

/// Checks an attachment's name, type and size; every problem is reported per field, and no
/// message repeats what was sent.
pub fn check(
    filename: Option<&str>,
    raw_content_type: Option<&str>,
    size: Option<u64>,
    max_bytes: u64,
) -> Result<Allowed, FieldErrors> {
    let mut errors = FieldErrors::new();
    let ct = match raw_content_type {
        None => {
            errors.insert("content_type".into(), "is required".into());
            None
        }
        Some(raw) => {
            let ct = content_type(raw);
            if ct.is_none() {
                errors.insert(
                    "content_type".into(),
                    format!("is not an allowed type ({})", types_listed()),
                );
            }
            ct
        }
    };
    match filename {
        None => {
            errors.insert("filename".into(), "is required".into());
        }
        Some(name) => {
            if let Some(e) = filename_error(name, ct) {
                errors.insert("filename".into(), e);
            }
        }
    }
    match size {
        None => {
            errors.insert("size".into(), "is required".into());
        }
        Some(0) => {
            errors.insert("size".into(), "must be at least 1 byte".into());
        }
        Some(n) if n > max_bytes => {
            errors.insert("size".into(), format!("must be at most {max_bytes} bytes"));
        }
        Some(_) => {}
    }
    match (errors.is_empty(), filename, ct) {
        (true, Some(name), Some(ct)) => Ok(Allowed {
            filename: name.to_string(),
            content_type: ct,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 10 * 1024 * 1024;

    fn ok(name: &str, ct: &str) -> bool {
        check(Some(name), Some(ct), Some(100), MAX).is_ok()
    }

    fn field_error(name: &str, ct: &str, size: u64) -> FieldErrors {
        check(Some(name), Some(ct), Some(size), MAX).unwrap_err()
    }

    #[test]
    fn allowed_types_with_their_extensions_any_case() {
        for (name, ct) in [
            ("Offer.PDF", "application/pdf"),
            ("photo.jpeg", "image/jpeg"),
            ("photo.JPG", "IMAGE/JPEG"),
            ("scan.png", "image/png"),
            ("anim.gif", "image/gif"),
            ("pic.webp", "image/webp"),
            ("notes.txt", "text/plain"),
            ("list.csv", "text/csv"),
            ("cv.doc", "application/msword"),
            (
                "cv.docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            ("sheet.xls", "application/vnd.ms-excel"),
            (
                "sheet.xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            ("report 2026.v2.pdf", "application/pdf"),
            ("Ofertă finală.pdf", "application/pdf"),
        ] {
            assert!(ok(name, ct), "{name} / {ct} refused");
        }
        let a = check(Some("x.PDF"), Some(" Application/PDF "), Some(1), MAX).unwrap();
        assert_eq!(a.content_type, "application/pdf");
    }

    #[test]
    fn html_svg_executables_scripts_and_archives_are_refused_by_type() {
        for ct in [
            "text/html",
            "image/svg+xml",
            "application/x-msdownload",
            "application/javascript",
            "application/x-sh",
            "application/zip",
            "application/octet-stream",
            "application/vnd.ms-excel.sheet.macroEnabled.12",
            "text/plain; charset=utf-8",
            "",
        ] {
            let e = field_error("file.pdf", ct, 10);
            assert!(e.contains_key("content_type"), "{ct} accepted");
        }
    }

    #[test]
    fn refused_by_extension_even_with_an_allowed_type() {
        for name in [
            "page.html",
            "logo.svg",
            "setup.exe",
            "run.sh",
            "x.js",
            "a.zip",
            "m.xlsm",
            "noext",
            "x.PDF.EXE",
            "invoice.pdf.exe",
            "cv.exe.pdf",
            "scan.html.pdf",
            "a.pdf.pdf",
            ".pdf",
            "evil\u{202E}fdp.exe",
            "x.pdf.",
            " x.pdf",
            "dir/x.pdf",
            "..\\x.pdf",
            "a\u{0}.pdf",
        ] {
            let e = field_error(name, "application/pdf", 10);
            assert!(e.contains_key("filename"), "{name:?} accepted");
        }
        assert_eq!(
            field_error("cv.exe.pdf", "application/pdf", 10)["filename"],
            "has a double extension"
        );
    }

    #[test]
    fn extension_must_match_the_type() {
        let e = field_error("photo.png", "application/pdf", 10);
        assert_eq!(
            e["filename"],
            "has an extension that does not match the content type"
        );
    }

    #[test]
    fn size_limits() {
        assert!(field_error("a.pdf", "application/pdf", 0).contains_key("size"));
        assert!(field_error("a.pdf", "application/pdf", MAX + 1).contains_key("size"));
        assert!(check(Some("a.pdf"), Some("application/pdf"), Some(MAX), MAX).is_ok());
    }

    #[test]
    fn messages_never_repeat_the_name() {
        let e = field_error("secret-person-name.exe", "text/html", MAX + 1);
        assert_eq!(e.len(), 3);
        assert!(e.values().all(|m| !m.contains("secret")));
    }
}
