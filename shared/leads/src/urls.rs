//! The URLs a form names: the origins allowed to post from a browser, and the page a plain
//! form post is redirected to. `https` only (`http` for localhost), so personal data typed into
//! a form never travels over plain HTTP, and exact, normalized origins, because browsers send
//! `Origin` lowercased without a default port.

struct Url {
    scheme: String,
    host: String,
    port: Option<u16>,
    /// Everything from the first `/`, `?` or `#` on.
    rest: String,
}

fn split_url(raw: &str) -> Result<Url, &'static str> {
    const BAD: &str = "must be an absolute URL such as https://www.example.com";
    // Characters a URL must percent-encode are refused rather than guessed at.
    let unsafe_char = |c: char| c.is_control() || c.is_whitespace() || "\"<>\\^`{|}".contains(c);
    if raw.len() > 2048 || raw.chars().any(unsafe_char) {
        return Err(BAD);
    }
    let (scheme, after) = raw.split_once("://").ok_or(BAD)?;
    let scheme = scheme.to_ascii_lowercase();
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    if authority.contains('@') {
        return Err("must not carry a user name or password");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6.split_once(']').ok_or(BAD)?;
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(BAD);
        }
        (
            format!("[{}]", h.to_ascii_lowercase()),
            tail.strip_prefix(':'),
        )
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    if !host.starts_with('[') {
        let labels_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !labels_ok {
            return Err(BAD);
        }
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or(BAD)?)
        }
        Some(_) => return Err(BAD),
    };
    Ok(Url {
        scheme,
        host,
        port,
        rest: rest.to_string(),
    })
}

fn is_local(host: &str) -> bool {
    host == "localhost" || host == "127.0.0.1" || host == "[::1]"
}

/// `https`, or `http` on this machine (development).
fn check_scheme(u: &Url) -> Result<(), &'static str> {
    match u.scheme.as_str() {
        "https" => Ok(()),
        "http" if is_local(&u.host) => Ok(()),
        _ => Err("must use https (http only for localhost)"),
    }
}

fn origin_string(u: &Url) -> String {
    let default = matches!(
        (u.scheme.as_str(), u.port),
        ("https", Some(443)) | ("http", Some(80))
    );
    match u.port {
        Some(p) if !default => format!("{}://{}:{p}", u.scheme, u.host),
        _ => format!("{}://{}", u.scheme, u.host),
    }
}

/// An origin exactly as a browser sends it in `Origin`: lowercase, no path, no default port.
pub fn parse_origin(raw: &str) -> Result<String, &'static str> {
    let u = split_url(raw.trim())?;
    check_scheme(&u)?;
    if !(u.rest.is_empty() || u.rest == "/") {
        return Err("must be an origin only (scheme://host[:port]), without a path");
    }
    Ok(origin_string(&u))
}

/// Where a plain HTML form post is sent after success.
pub fn parse_redirect_url(raw: &str) -> Result<String, &'static str> {
    let u = split_url(raw.trim())?;
    check_scheme(&u)?;
    let rest = if u.rest.is_empty() {
        "/"
    } else {
        u.rest.as_str()
    };
    Ok(format!("{}{rest}", origin_string(&u)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_redirects() {
        assert_eq!(
            parse_origin("https://WWW.Example.com").unwrap(),
            "https://www.example.com"
        );
        assert_eq!(
            parse_origin("https://example.com:443").unwrap(),
            "https://example.com"
        );
        assert_eq!(
            parse_origin("https://example.com:8443/").unwrap(),
            "https://example.com:8443"
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            parse_origin("http://localhost:3000").unwrap(),
            "http://localhost:3000"
        );
        for bad in [
            "example.com",
            "http://example.com",
            "https://example.com/path",
            "ftp://example.com",
            "https://user:pw@example.com",
            "https://exa mple.com",
            "https://-bad-.com",
            "https://example.com:99999",
            "https://example.com:0",
            "https://",
            "javascript://x",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            parse_redirect_url("https://example.com/thanks?x=1").unwrap(),
            "https://example.com/thanks?x=1"
        );
        assert_eq!(
            parse_redirect_url("https://example.com").unwrap(),
            "https://example.com/"
        );
        assert!(parse_redirect_url("http://example.com/thanks").is_err());
        assert!(parse_redirect_url("javascript:alert(1)").is_err());
        assert!(parse_redirect_url("https://example.com/\"><script>").is_err());
    }
}
