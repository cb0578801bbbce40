//! Where a webhook may be delivered. Server-side request forgery is refused twice: an endpoint's
//! URL is checked when it is registered, and every delivery resolves the host, refuses any
//! forbidden address among the answers, and connects to the checked address itself (the
//! connection is pinned to it: a DNS answer that changes between the check and the connection,
//! "DNS rebinding", cannot redirect it). Redirects are never followed.
//!
//! Forbidden: unspecified, loopback, private (RFC 1918), carrier-grade NAT, link-local (which
//! holds the cloud metadata service, 169.254.169.254), multicast, broadcast, documentation and
//! benchmark ranges, reserved; for IPv6 also unique-local (fc00::/7, where AWS's IPv6 metadata
//! address fd00:ec2::254 lives), link-local, and any IPv4 address embedded in an IPv6 one
//! (mapped, compatible, NAT64, 6to4) is judged as that IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest URL an endpoint may have.
pub const MAX_URL_LEN: usize = 2048;

pub fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24, protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15, benchmarking
        || o[0] >= 240 // reserved
}

fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96).
    if s[..6] == [0, 0, 0, 0, 0, 0] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    // 6to4: 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

pub fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if ip.is_unspecified() || ip.is_loopback() {
        return true;
    }
    if let Some(v4) = embedded_v4(ip) {
        return forbidden_v4(v4);
    }
    (s[0] & 0xfe00) == 0xfc00 // unique-local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
}

pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

/// An endpoint URL, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub https: bool,
    /// Lowercase host name, or an IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, `/` at least.
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlError {
    TooLong,
    NotHttps,
    Malformed,
    /// User name or password in the URL.
    Credentials,
    /// An IP literal, or a name the platform reserves (localhost, *.internal), that is forbidden.
    ForbiddenAddress,
}

impl UrlError {
    pub fn message(self) -> &'static str {
        match self {
            UrlError::TooLong => "the URL is longer than 2048 characters",
            UrlError::NotHttps => "the URL must be https://",
            UrlError::Malformed => "the URL is not an absolute https URL with a host",
            UrlError::Credentials => "the URL must not carry a user name or password",
            UrlError::ForbiddenAddress => {
                "the URL points to a private, loopback, link-local or metadata address"
            }
        }
    }
}

/// Loopback ports a local stage may deliver to over plain HTTP (the `make dev` sink); empty in
/// every deployed stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalSinks {
    pub loopback_http_ports: Vec<u16>,
}

impl LocalSinks {
    /// `WEBHOOK_LOOPBACK_PORTS`: port numbers (spaces or commas between); `none` or unset is
    /// none, as in every deployed stage.
    pub fn from_env(
        env: &shared_core::config::Env,
    ) -> Result<Self, shared_core::config::ConfigError> {
        let raw = env.optional("WEBHOOK_LOOPBACK_PORTS").unwrap_or_default();
        if raw.trim() == "none" {
            return Ok(Self::default());
        }
        let loopback_http_ports = raw
            .split([' ', ','])
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<u16>().ok().filter(|p| *p != 0).ok_or(
                    shared_core::config::ConfigError::Invalid {
                        name: "WEBHOOK_LOOPBACK_PORTS",
                        reason: "\"none\" or port numbers".into(),
                    },
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            loopback_http_ports,
        })
    }

    fn allows_url(&self, e: &Endpoint) -> bool {
        !self.loopback_http_ports.is_empty()
            && !e.https
            && matches!(e.host.as_str(), "127.0.0.1" | "localhost")
            && self.loopback_http_ports.contains(&e.port)
    }
}

/// Reads and checks an endpoint URL (at registration; deliveries check the resolved address too).
pub fn parse_url(url: &str, local: &LocalSinks) -> Result<Endpoint, UrlError> {
    if url.len() > MAX_URL_LEN {
        return Err(UrlError::TooLong);
    }
    if url.bytes().any(|b| b <= b' ' || b >= 0x7f || b == b'\\') {
        return Err(UrlError::Malformed);
    }
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(UrlError::NotHttps);
    };
    if rest.contains('#') {
        return Err(UrlError::Malformed);
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@') {
        return Err(UrlError::Credentials);
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(UrlError::Malformed)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(UrlError::Malformed)?),
        };
        (h.to_ascii_lowercase(), port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    let port = match port {
        None => {
            if https {
                443
            } else {
                80
            }
        }
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or(UrlError::Malformed)?,
    };
    let host = host.trim_end_matches('.').to_string();
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':')
    {
        return Err(UrlError::Malformed);
    }
    let path = if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let e = Endpoint {
        https,
        host,
        port,
        path,
    };
    if local.allows_url(&e) {
        return Ok(e);
    }
    if !e.https {
        return Err(UrlError::NotHttps);
    }
    if let Ok(ip) = e.host.parse::<IpAddr>() {
        if forbidden(ip) {
            return Err(UrlError::ForbiddenAddress);
        }
    } else if e.host == "localhost"
        || e.host.ends_with(".localhost")
        || e.host.ends_with(".internal")
        || e.host.ends_with(".local")
        || !e.host.contains('.')
    {
        return Err(UrlError::ForbiddenAddress);
    }
    // Hosts spelled as numbers other than dotted quads (`2130706433`, `0x7f.1`) are refused:
    // resolvers read them as addresses.
    if e.host
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_hexdigit() || b == b'x'))
    {
        return Err(UrlError::ForbiddenAddress);
    }
    Ok(e)
}

/// The first address of a resolution a delivery may connect to, or None when any answer is
/// forbidden (a name that resolves to a private address among public ones is refused whole).
/// No exception for a local stage: its sink is only ever the literal `http://127.0.0.1:<port>`
/// URL, which is not resolved ([`Endpoint::local_sink`]).
pub fn pick_address(answers: &[std::net::SocketAddr]) -> Option<std::net::SocketAddr> {
    if !answers.is_empty() && answers.iter().all(|a| !forbidden(a.ip())) {
        answers.first().copied()
    } else {
        None
    }
}

impl Endpoint {
    /// The address of a local stage's sink (only plain-HTTP URLs that [`parse_url`] allowed
    /// through [`LocalSinks`] are not https).
    pub fn local_sink(&self) -> Option<std::net::SocketAddr> {
        (!self.https).then(|| std::net::SocketAddr::from(([127, 0, 0, 1], self.port)))
    }
}

/// Name resolution's answer.
pub type Resolved = std::io::Result<Vec<std::net::SocketAddr>>;
/// Name resolution, injectable so tests can make a name resolve to a private address.
pub type ResolveFn = std::sync::Arc<
    dyn Fn(String, u16) -> std::pin::Pin<Box<dyn std::future::Future<Output = Resolved> + Send>>
        + Send
        + Sync,
>;

/// The system's resolver.
pub fn system_resolver() -> ResolveFn {
    std::sync::Arc::new(|host: String, port: u16| {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    })
}

/// Why an endpoint may not be delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Url(UrlError),
    /// The name does not resolve (now).
    Unresolvable,
    /// An answer is a forbidden address.
    Address,
}

/// Checks a URL as a delivery would: its form, then (unless it is the local sink) every address
/// its host resolves to. Returns the endpoint and the one address to connect to.
pub async fn check(
    url: &str,
    local: &LocalSinks,
    resolve: &ResolveFn,
    timeout: std::time::Duration,
) -> Result<(Endpoint, std::net::SocketAddr), Refusal> {
    let e = parse_url(url, local).map_err(Refusal::Url)?;
    if let Some(sink) = e.local_sink() {
        return Ok((e, sink));
    }
    let answers = match tokio::time::timeout(timeout, resolve(e.host.clone(), e.port)).await {
        Ok(Ok(a)) => a,
        _ => return Err(Refusal::Unresolvable),
    };
    match pick_address(&answers) {
        Some(a) => Ok((e, a)),
        None if answers.is_empty() => Err(Refusal::Unresolvable),
        None => Err(Refusal::Address),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn local_sink_ports_are_none_or_numbers() {
        let ports = |v: Option<&str>| {
            let env =
                shared_core::config::Env::from_pairs(v.map(|v| ("WEBHOOK_LOOPBACK_PORTS", v)));
            LocalSinks::from_env(&env).map(|l| l.loopback_http_ports)
        };
        assert_eq!(ports(None).unwrap(), Vec::<u16>::new(), "unset");
        assert_eq!(ports(Some("none")).unwrap(), Vec::<u16>::new());
        assert_eq!(ports(Some("12112 9")).unwrap(), vec![12112, 9]);
        assert_eq!(ports(Some("12112,9")).unwrap(), vec![12112, 9]);
        assert!(ports(Some("0")).is_err());
        assert!(ports(Some("all")).is_err());
    }

    #[test]
    fn private_loopback_link_local_metadata_and_unique_local_are_forbidden() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "ff02::1",
        ] {
            assert!(forbidden(ip(a)), "{a}");
        }
        for a in [
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!forbidden(ip(a)), "{a}");
        }
    }

    #[test]
    fn urls_must_be_https_to_a_public_host() {
        let none = LocalSinks::default();
        let e = parse_url("https://hooks.example.com/in?x=1", &none).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("hooks.example.com", 443, "/in?x=1")
        );
        assert_eq!(
            parse_url("https://Example.com:8443", &none).unwrap().port,
            8443
        );
        for (u, err) in [
            ("http://example.com/", UrlError::NotHttps),
            ("ftp://example.com/", UrlError::NotHttps),
            ("https://user:pw@example.com/", UrlError::Credentials),
            ("https://127.0.0.1/", UrlError::ForbiddenAddress),
            (
                "https://169.254.169.254/latest/meta-data",
                UrlError::ForbiddenAddress,
            ),
            ("https://[::1]/", UrlError::ForbiddenAddress),
            ("https://[fd00:ec2::254]/", UrlError::ForbiddenAddress),
            ("https://localhost/", UrlError::ForbiddenAddress),
            (
                "https://metadata.google.internal/",
                UrlError::ForbiddenAddress,
            ),
            ("https://2130706433/", UrlError::ForbiddenAddress),
            ("https://0x7f.0x1/", UrlError::ForbiddenAddress),
            ("https://intranet/", UrlError::ForbiddenAddress),
            ("https:///path", UrlError::Malformed),
            ("https://exa mple.com/", UrlError::Malformed),
            ("https://example.com:0/", UrlError::Malformed),
            ("https://example.com/#frag", UrlError::Malformed),
        ] {
            assert_eq!(parse_url(u, &none), Err(err), "{u}");
        }
        assert_eq!(
            parse_url(&format!("https://a.com/{}", "a".repeat(2100)), &none),
            Err(UrlError::TooLong)
        );
    }

    #[test]
    fn a_local_stage_allows_its_loopback_sink_only() {
        let local = LocalSinks {
            loopback_http_ports: vec![9911],
        };
        assert!(parse_url("http://127.0.0.1:9911/hook", &local).is_ok());
        assert_eq!(
            parse_url("http://127.0.0.1:9912/hook", &local),
            Err(UrlError::NotHttps)
        );
        assert_eq!(
            parse_url("http://127.0.0.1:9911/hook", &LocalSinks::default()),
            Err(UrlError::NotHttps)
        );
        let sink: std::net::SocketAddr = "127.0.0.1:9911".parse().unwrap();
        let e = parse_url("http://localhost:9911/hook", &local).unwrap();
        assert_eq!(e.local_sink(), Some(sink));
        assert_eq!(
            parse_url("https://example.com/", &local)
                .unwrap()
                .local_sink(),
            None
        );
        // A name resolving to the sink's address is no sink.
        assert_eq!(pick_address(&[sink]), None);
    }

    #[test]
    fn a_name_resolving_to_any_forbidden_address_is_refused_whole() {
        let public: std::net::SocketAddr = "93.184.216.34:443".parse().unwrap();
        let private: std::net::SocketAddr = "10.0.0.5:443".parse().unwrap();
        assert_eq!(pick_address(&[public]), Some(public));
        assert_eq!(pick_address(&[public, private]), None);
        assert_eq!(pick_address(&[]), None);
    }
}
