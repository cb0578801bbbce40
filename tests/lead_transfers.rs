//! The lead-transfers function against the emulator (DynamoDB, S3, SSM), through real API
//! Gateway v2 events: attachments (rules, presigned upload and download, the signature binding
//! type and length), imports (report, duplicates, suppression, legal basis), exports (CSV and
//! JSON downloaded through their links, restricted leads left out), tenant isolation, roles,
//! the data inventory and the logs.
//!
//! Presigned URLs are used with a plain HTTP/1.1 client over a TCP socket, as a browser would.
//! The emulator does not check presigned signatures, so the tests check them the way S3 does
//! (SigV4, recomputed from the request actually sent): a request with another content type or
//! length does not match the signature.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Once};

use aws_sdk_dynamodb::types::AttributeValue;
use hmac::{Hmac, Mac};
use integration_tests::*;
use lambda_http::Request;
use lead_transfers::config::{Config, Settings};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared_accounts::auth::jwt::{AccessClaims, TokenSigner, ACCESS_TOKEN_TTL_SECS, ISSUER};
use shared_accounts::auth::permissions::Role;
use shared_accounts::dynamo::{session_item, user_item};
use shared_accounts::{Mfa, User};
use shared_core::clock::{Clock, UlidGenerator};
use shared_core::config::Env;
use shared_core::domain::{ContactDetails, Email, LeadId, Phone, SessionId, TenantId, UserId};
use shared_core::dynamo::Item;
use shared_leads::dynamo::new_lead_item;
use shared_leads::transfers::{TransfersStore, TransfersTables};
use shared_privacy::inventory::{self, Table};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type App = lead_transfers::App;

// ---------------------------------------------------------------- the world

struct T {
    w: World,
    app: App,
    /// auth's private key: the tests mint tokens as auth would (lead-transfers cannot).
    signer: TokenSigner,
    tables: TransfersTables,
    attachments_bucket: String,
    exports_bucket: String,
}

/// Small multipart parts in the emulator, so a test can stream an export of a few hundred
/// leads in several parts (real S3 needs 5 MiB; the function's default is that).
const TEST_PART_BYTES: usize = 4 * 1024;

fn emulator_settings() {
    static ONCE: Once = Once::new();
    // Before the emulator starts (the first World in this process): it inherits the variable.
    ONCE.call_once(|| std::env::set_var("S3_UPLOAD_PART_MIN_SIZE", TEST_PART_BYTES.to_string()));
}

async fn setup() -> T {
    setup_with(Settings::default()).await
}

async fn setup_with(settings: Settings) -> T {
    emulator_settings();
    let w = World::new().await.expect("test world");
    let env = infra::local::local_function_env(&w.template, "lead-transfers", emulator_endpoint())
        .expect("lead-transfers is in the template");
    let config = Config::from_env(&Env::from_pairs(env)).expect("template env is a valid config");
    let signer = w.token_signer().await.expect("auth's signing key");
    let verifier = w
        .token_verifier("lead-transfers")
        .await
        .expect("public keys");
    let app = App {
        store: TransfersStore::new(w.clients.dynamo.clone(), config.tables.clone()),
        s3: w.clients.s3.clone(),
        buckets: config.buckets.clone(),
        keys: w.key.clone(),
        verifier,
        clock: w.clock.clone(),
        ids: Arc::new(UlidGenerator),
        settings,
    };
    T {
        tables: config.tables,
        attachments_bucket: config.buckets.attachments,
        exports_bucket: config.buckets.exports,
        w,
        app,
        signer,
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A live session of a new user of `tenant` with `role`, and an access token for it.
async fn token(t: &T, tenant: &TenantId, role: Role) -> String {
    member(t, tenant, role).await.2
}

/// A new user of `tenant` with `role` (email `<user id>@example.com`), a live session of theirs
/// and an access token for it, as auth would issue it.
async fn member(t: &T, tenant: &TenantId, role: Role) -> (User, SessionId, String) {
    let now = t.w.clock.now();
    let user = UserId::parse(&unique("us")).unwrap();
    let sid = SessionId::parse(&unique("se")).unwrap();
    let session = live_session(&sid, &user, tenant, now);
    put(t, &t.w.table("TenantsTable"), session_item(&session)).await;
    let record = User {
        user_id: user.clone(),
        tenant_id: tenant.clone(),
        email: Email::parse(&format!("{user}@example.com")).unwrap(),
        name: "Team Member".into(),
        phone: None,
        role,
        password_hash: "unused".into(),
        email_verified: true,
        created_at: now,
        mfa: Mfa::default(),
        last_login: None,
        policy: None,
    };
    put(t, &t.w.table("TenantsTable"), user_item(&record)).await;
    let token = t.signer.issue(&AccessClaims {
        sub: user.to_string(),
        tid: tenant.to_string(),
        role: role.as_str().to_string(),
        sid: sid.to_string(),
        cep: 0,
        iat: now.unix_timestamp(),
        exp: now.unix_timestamp() + ACCESS_TOKEN_TTL_SECS,
        iss: ISSUER.to_string(),
        typ: "access".to_string(),
    });
    (record, sid, token)
}

async fn put(t: &T, table: &str, item: Item) {
    t.w.clients
        .dynamo
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .expect("put item");
}

/// A lead as lead intake writes it (the shared constructor), optionally restricted.
async fn seed_lead(
    t: &T,
    tenant: &TenantId,
    email: &str,
    name: Option<&str>,
    restricted: bool,
) -> LeadId {
    let email = Email::parse(email).unwrap();
    let bidx = t.w.key.email(&email);
    let id = t.w.key.lead_id(tenant, &bidx);
    let contact = ContactDetails {
        email: Some(email),
        name: name.map(str::to_string),
        ..ContactDetails::default()
    };
    let mut it = new_lead_item(
        tenant,
        &id,
        &contact,
        (Some(&bidx), None),
        "new",
        t.w.clock.now(),
    );
    it.insert(
        "source_form_id".into(),
        AttributeValue::S("demo-contact".into()),
    );
    if restricted {
        it.insert("restricted".into(), AttributeValue::Bool(true));
    }
    put(t, &t.tables.leads, it).await;
    id
}

async fn lead_item(t: &T, tenant: &TenantId, id: &LeadId) -> Option<Item> {
    let k = shared_core::keys::lead(tenant, id);
    t.w.clients
        .dynamo
        .get_item()
        .table_name(&t.tables.leads)
        .key("pk", AttributeValue::S(k.pk))
        .key("sk", AttributeValue::S(k.sk))
        .send()
        .await
        .unwrap()
        .item
}

fn lead_id_of(t: &T, tenant: &TenantId, email: &str) -> LeadId {
    t.w.key
        .lead_id(tenant, &t.w.key.email(&Email::parse(email).unwrap()))
}

// ---------------------------------------------------------------- calling the function

struct Reply {
    status: u16,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    fn str(&self, name: &str) -> String {
        self.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            .to_string()
    }
}

fn event(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&Value>,
    bearer: Option<&str>,
) -> Request {
    let mut e = fixture("lead-transfers/run-export.json");
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["http"]["path"] = json!(path);
    e["routeKey"] = json!(format!("{method} {path}"));
    e["pathParameters"] = json!({});
    e["rawQueryString"] = json!(query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&"));
    if !query.is_empty() {
        e["queryStringParameters"] = json!(query
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>());
    }
    let headers = e["headers"].as_object_mut().expect("headers");
    headers.remove("authorization");
    if let Some(t) = bearer {
        headers.insert("authorization".into(), json!(format!("Bearer {t}")));
    }
    match body {
        Some(b) => e["body"] = json!(b.to_string()),
        None => {
            e["body"] = Value::Null;
            e["headers"].as_object_mut().unwrap().remove("content-type");
        }
    }
    request(&e)
}

async fn call(t: &T, method: &str, path: &str, body: Option<Value>, bearer: &str) -> Reply {
    send(t, event(method, path, &[], body.as_ref(), Some(bearer))).await
}

async fn send(t: &T, req: Request) -> Reply {
    let resp = lead_transfers::handle(&t.app, req).await;
    Reply {
        status: resp.status().as_u16(),
        body: response_json(&resp),
    }
}

// ---------------------------------------------------------------- a plain HTTP/1.1 client

struct HttpReply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// One request to the emulator (loopback only), as a browser would send it with a presigned URL.
async fn http(method: &str, url: &str, headers: &[(String, String)], body: &[u8]) -> HttpReply {
    let rest = url
        .strip_prefix("http://")
        .expect("an http URL of the emulator");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    assert!(
        authority.starts_with("127.0.0.1:"),
        "only the local emulator"
    );
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n");
    let mut has_length = false;
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("host") {
            continue;
        }
        has_length |= k.eq_ignore_ascii_case("content-length");
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_length && (method == "PUT" || !body.is_empty()) {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    stream.write_all(req.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    HttpReply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..eol])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

/// The headers a client must send with a presigned upload, as the API answered them.
fn upload_headers(reply: &Value) -> Vec<(String, String)> {
    reply["upload_headers"]
        .as_object()
        .expect("upload_headers")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

// ---------------------------------------------------------------- SigV4, as S3 checks it

fn uri_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether a request sent to a presigned URL with `headers` matches its signature, recomputed
/// with the emulator's secret key the way S3 does for query-string authentication.
fn signature_matches(method: &str, url: &str, headers: &[(String, String)]) -> bool {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path_query) = rest.split_at(rest.find('/').unwrap());
    let (path, query) = path_query.split_once('?').unwrap();
    let params: Vec<(String, String)> = query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let mut canonical_query: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    canonical_query.sort();
    let signed = get("X-Amz-SignedHeaders");
    let mut sent: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    sent.insert("host".into(), authority.to_string());
    let mut canonical_headers = String::new();
    for name in signed.split(';') {
        let Some(v) = sent.get(name) else {
            return false;
        };
        canonical_headers.push_str(&format!("{name}:{v}\n"));
    }
    let canonical = format!(
        "{method}\n{path}\n{}\n{canonical_headers}\n{signed}\nUNSIGNED-PAYLOAD",
        canonical_query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    );
    let credential = get("X-Amz-Credential");
    let scope: Vec<&str> = credential.split('/').collect();
    let (date, region, service) = (scope[1], scope[2], scope[3]);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{date}/{region}/{service}/aws4_request\n{}",
        get("X-Amz-Date"),
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = hmac(
        &hmac(
            &hmac(
                &hmac(
                    format!("AWS4{}", infra::bootstrap::TEST_SECRET_ACCESS_KEY).as_bytes(),
                    date,
                ),
                region,
            ),
            service,
        ),
        "aws4_request",
    );
    hex(&hmac(&key, &string_to_sign)) == get("X-Amz-Signature")
}

fn with_header(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            if k == name {
                (k.clone(), value.to_string())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

// ---------------------------------------------------------------- attachments

fn attachments_path(lead: &LeadId) -> String {
    format!("/v1/leads/{lead}/attachments")
}

#[tokio::test]
async fn an_attachment_goes_up_and_down_through_presigned_urls_bound_to_its_type_and_length() {
    let t = setup().await;
    let a = t.w.tenant.clone();
    let member = token(&t, &a, Role::Member).await;
    let lead = seed_lead(&t, &a, "ana@example.com", Some("Ana"), false).await;
    let file = b"%PDF-1.7\n% an offer\n".repeat(50);

    let r = call(
        &t,
        "POST",
        &attachments_path(&lead),
        Some(json!({
            "filename": "Offer 2026.PDF", "content_type": "application/pdf", "size": file.len()
        })),
        &member,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.str("id");
    assert!(id.starts_with("at-"));
    assert_eq!(r.body["upload_method"], "PUT");
    let headers = upload_headers(&r.body);
    let names: BTreeSet<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        names.is_superset(&BTreeSet::from([
            "content-type",
            "content-length",
            "x-amz-server-side-encryption"
        ])),
        "{names:?}"
    );
    let url = r.str("upload_url");
    let signed = url
        .split("X-Amz-SignedHeaders=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    for h in [
        "content-length",
        "content-type",
        "host",
        "x-amz-server-side-encryption",
    ] {
        assert!(signed.contains(h), "{h} not signed: {signed}");
    }
    assert!(
        url.contains(&format!("/tenants/{a}/leads/{lead}/{id}?")),
        "object under the tenant and lead prefix: {url}"
    );
    assert!(url.contains("X-Amz-Expires=300"), "5 minutes");
    let expires = time::OffsetDateTime::parse(
        &r.str("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        (expires - t.w.clock.now().replace_nanosecond(0).unwrap()).whole_seconds(),
        300
    );

    // S3 accepts exactly the declared request, and nothing else.
    assert!(
        signature_matches("PUT", &url, &headers),
        "the declared upload matches its signature"
    );
    assert!(!signature_matches(
        "PUT",
        &url,
        &with_header(&headers, "content-type", "text/html")
    ));
    assert!(!signature_matches(
        "PUT",
        &url,
        &with_header(&headers, "content-length", "10485761")
    ));
    let no_sse: Vec<_> = headers
        .iter()
        .filter(|(k, _)| k != "x-amz-server-side-encryption")
        .cloned()
        .collect();
    assert!(
        !signature_matches("PUT", &url, &no_sse),
        "encryption cannot be left out"
    );

    // Downloading before the upload: not yet.
    let dl_path = format!("{}/{id}", attachments_path(&lead));
    let r = call(&t, "GET", &dl_path, None, &member).await;
    assert_eq!((r.status, r.code()), (409, "upload_pending"));

    let put = http("PUT", &url, &headers, &file).await;
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));

    let r = call(&t, "GET", &dl_path, None, &member).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["filename"], "Offer 2026.PDF");
    let dl = r.str("download_url");
    assert!(dl.contains("X-Amz-Expires=60"), "60 seconds: {dl}");
    let got = http("GET", &dl, &[], b"").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, file);
    let disposition = got
        .headers
        .get("content-disposition")
        .cloned()
        .unwrap_or_default();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert_eq!(
        got.headers.get("content-type").map(String::as_str),
        Some("application/pdf")
    );

    // Listed, and recorded under the lead.
    let viewer = token(&t, &a, Role::Viewer).await;
    let r = send(
        &t,
        event(
            "GET",
            &attachments_path(&lead),
            &[("limit", "10")],
            None,
            Some(&viewer),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["items"][0]["id"], id.as_str());
    assert_eq!(r.body["items"][0]["size"], file.len());
    assert!(r.body["next_cursor"].is_null());
    let att = t.w.items_with_sk_prefix("LeadsTable", "ATT#").await;
    assert_eq!(att.len(), 1);
    assert_eq!(
        s(&att[0], "pk"),
        Some(shared_core::keys::lead(&a, &lead).pk.as_str()),
        "the lead's partition: erased with it"
    );
    assert_eq!(
        s(&att[0], "object_key").unwrap(),
        format!("{}{id}", shared_core::keys::lead_objects_prefix(&a, &lead))
    );
    let head =
        t.w.clients
            .s3
            .head_object()
            .bucket(&t.attachments_bucket)
            .key(s(&att[0], "object_key").unwrap())
            .send()
            .await
            .unwrap();
    assert_eq!(head.content_length, Some(file.len() as i64));
}

#[tokio::test]
async fn attachment_rules_roles_restriction_and_other_tenants() {
    let t = setup().await;
    let a = t.w.tenant.clone();
    let b = TenantId::parse("tenant-b").unwrap();
    let member = token(&t, &a, Role::Member).await;
    let lead = seed_lead(&t, &a, "rules@example.com", None, false).await;
    let path = attachments_path(&lead);
    let attach = |name: &str, ct: &str, size: u64| json!({"filename": name, "content_type": ct, "size": size});

    for (name, ct) in [
        ("a.pdf", "application/pdf"),
        ("b.PNG", "image/png"),
        ("c.jpg", "image/jpeg"),
        ("c.jpeg", "image/jpeg"),
        ("d.gif", "image/gif"),
        ("e.webp", "image/webp"),
        ("f.txt", "text/plain"),
        ("g.csv", "text/csv"),
        ("h.doc", "application/msword"),
        (
            "i.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        ("j.xls", "application/vnd.ms-excel"),
        (
            "k.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
    ] {
        let r = call(&t, "POST", &path, Some(attach(name, ct, 1000)), &member).await;
        assert_eq!(r.status, 201, "{name} {ct}: {}", r.body);
    }
    for (name, ct, field) in [
        ("page.html", "text/html", "content_type"),
        ("logo.svg", "image/svg+xml", "content_type"),
        ("setup.exe", "application/x-msdownload", "content_type"),
        ("run.sh", "application/x-sh", "content_type"),
        ("a.zip", "application/zip", "content_type"),
        ("page.html", "application/pdf", "filename"),
        ("logo.svg", "image/png", "filename"),
        ("setup.exe", "application/pdf", "filename"),
        ("invoice.pdf.exe", "application/pdf", "filename"),
        ("invoice.PDF.EXE", "application/pdf", "filename"),
        ("cv.exe.pdf", "application/pdf", "filename"),
        ("photo.png", "application/pdf", "filename"),
        ("evil\u{202E}fdp.exe", "application/pdf", "filename"),
    ] {
        let r = call(&t, "POST", &path, Some(attach(name, ct, 1000)), &member).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_fields"),
            "{name:?} {ct}: {}",
            r.body
        );
        assert!(
            r.body["error"]["fields"][field].is_string(),
            "{name:?} {ct}: {}",
            r.body
        );
        assert!(
            !r.body.to_string().contains(name.split('.').next().unwrap()) || name.starts_with("a."),
            "no echo: {}",
            r.body
        );
    }
    let r = call(
        &t,
        "POST",
        &path,
        Some(attach("big.pdf", "application/pdf", 10 * 1024 * 1024 + 1)),
        &member,
    )
    .await;
    assert!(r.body["error"]["fields"]["size"].is_string(), "{}", r.body);
    let r = call(
        &t,
        "POST",
        &path,
        Some(attach("max.pdf", "application/pdf", 10 * 1024 * 1024)),
        &member,
    )
    .await;
    assert_eq!(r.status, 201, "10 MiB exactly is fine");
    let r = call(
        &t,
        "POST",
        &path,
        Some(json!({"filename": "a.pdf", "size": 1})),
        &member,
    )
    .await;
    assert!(r.body["error"]["fields"]["content_type"].is_string());
    let r = call(
        &t,
        "POST",
        &path,
        Some(json!({"filename": "a.pdf", "content_type": "application/pdf", "size": 1, "x": 1})),
        &member,
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_body"));

    // Roles: a viewer reads, never writes.
    let viewer = token(&t, &a, Role::Viewer).await;
    let r = call(
        &t,
        "POST",
        &path,
        Some(attach("a.pdf", "application/pdf", 10)),
        &viewer,
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let billing = token(&t, &a, Role::Billing).await;
    assert_eq!(call(&t, "GET", &path, None, &billing).await.status, 403);

    // Unknown lead, another tenant's lead, another tenant's attachment: 404.
    let b_owner = token(&t, &b, Role::Owner).await;
    for (who, p) in [
        (
            &member,
            attachments_path(&LeadId::parse("ld-nope").unwrap()),
        ),
        (&b_owner, path.clone()),
    ] {
        let r = call(
            &t,
            "POST",
            &p,
            Some(attach("a.pdf", "application/pdf", 10)),
            who,
        )
        .await;
        assert_eq!((r.status, r.code()), (404, "lead_not_found"), "{p}");
        let r = call(&t, "GET", &p, None, who).await;
        assert_eq!((r.status, r.code()), (404, "lead_not_found"), "{p}");
    }
    let att = t.w.items_with_sk_prefix("LeadsTable", "ATT#").await;
    let some_id = s(&att[0], "attachment_id").unwrap().to_string();
    let r = call(&t, "GET", &format!("{path}/{some_id}"), None, &b_owner).await;
    assert_eq!((r.status, r.code()), (404, "attachment_not_found"));
    let r = call(&t, "GET", &format!("{path}/AT#1"), None, &member).await;
    assert_eq!(r.status, 404);

    // Pagination: 13 attachments, 5 at a time, none repeated or lost.
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("limit", "5")];
        if let Some(c) = &cursor {
            q.push(("cursor", c.as_str()));
        }
        let r = send(&t, event("GET", &path, &q, None, Some(&member))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        for it in r.body["items"].as_array().unwrap() {
            assert!(
                seen.insert(it["id"].as_str().unwrap().to_string()),
                "repeated"
            );
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 13);
    let r = send(
        &t,
        event("GET", &path, &[("limit", "0")], None, Some(&member)),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_limit"));

    // A restricted lead takes no new attachments.
    let restricted = seed_lead(&t, &a, "restricted@example.com", None, true).await;
    let r = call(
        &t,
        "POST",
        &attachments_path(&restricted),
        Some(attach("a.pdf", "application/pdf", 10)),
        &member,
    )
    .await;
    assert_eq!((r.status, r.code()), (409, "lead_restricted"));
    assert_eq!(
        t.w.items_with_sk_prefix("LeadsTable", "ATT#").await.len(),
        13
    );
}

// ---------------------------------------------------------------- imports

/// Uploads `csv` through the presigned URL and returns the upload id.
async fn upload_csv(t: &T, bearer: &str, csv: &str) -> String {
    let r = call(
        t,
        "POST",
        "/v1/imports/uploads",
        Some(json!({"size": csv.len()})),
        bearer,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let headers = upload_headers(&r.body);
    assert_eq!(
        headers.iter().find(|(k, _)| k == "content-type").unwrap().1,
        "text/csv"
    );
    let put = http("PUT", &r.str("upload_url"), &headers, csv.as_bytes()).await;
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    r.str("id")
}

async fn suppress(t: &T, tenant: &TenantId, bidx: &str) {
    let k = shared_core::keys::suppression(tenant, bidx);
    let mut it = Item::new();
    it.insert("pk".into(), AttributeValue::S(k.pk));
    it.insert("sk".into(), AttributeValue::S(k.sk));
    put(t, &t.tables.privacy, it).await;
}

#[tokio::test]
async fn an_import_reports_every_row_dedupes_skips_suppressed_people_and_records_its_basis() {
    let t = setup().await;
    let a = t.w.tenant.clone();
    let admin = token(&t, &a, Role::Admin).await;
    // Already known: one without a name (the import fills it), one complete, one restricted.
    let blank = seed_lead(&t, &a, "known.blank@example.com", None, false).await;
    let complete = seed_lead(&t, &a, "known.full@example.com", Some("Kept Name"), false).await;
    let restricted = seed_lead(&t, &a, "known.restricted@example.com", None, true).await;
    // Erased on request: on the suppression list (by email, and another by phone).
    suppress(
        &t,
        &a,
        &t.w.key.email(&Email::parse("erased@example.com").unwrap()),
    )
    .await;
    suppress(
        &t,
        &a,
        &t.w.key.phone(&Phone::parse("+40799000111").unwrap()),
    )
    .await;

    let csv = "\u{FEFF}Email,Name,Phone,Company,Stage\r\n\
        new.one@example.com,New One,+40 712 000 001,Acme,\r\n\
        New.Two@Example.com,New Two,,,qualified\r\n\
        new.one@example.com,Again,,,\r\n\
        not-an-email,Secret Person,0712,,\r\n\
        ,Nobody,,,\r\n\
        known.blank@example.com,Filled Name,,Known Co,\r\n\
        known.full@example.com,Other Name,,,\r\n\
        known.restricted@example.com,Changed,,,\r\n\
        Erased@example.com,Erased Person,,,\r\n\
        other@example.com,Phone Erased,+40 799 000 111,,\r\n\
        ok@example.com,,,,Not A Stage\r\n\
        ,,,,\r\n";
    let upload = upload_csv(&t, &admin, csv).await;
    let r = call(&t, "POST", "/v1/imports", Some(json!({
        "upload_id": upload, "legal_basis": "legitimate_interest", "source": "Trade fair 2026 business cards"
    })), &admin).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let b = &r.body;
    assert_eq!(b["id"], upload.as_str());
    assert_eq!(b["rows_total"], 11, "{b}");
    assert_eq!(b["imported"], 2, "{b}");
    assert_eq!(b["updated"], 1, "{b}");
    assert_eq!(
        b["duplicates"], 3,
        "in-file repeat, complete lead, restricted lead: {b}"
    );
    assert_eq!(b["suppressed"], 2, "{b}");
    assert_eq!(b["invalid_count"], 3, "{b}");
    let invalid = b["invalid"].as_array().unwrap();
    assert_eq!(
        invalid
            .iter()
            .map(|i| i["row"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [5, 6, 12]
    );
    assert!(invalid[0]["errors"]["email"].is_string() && invalid[0]["errors"]["phone"].is_string());
    assert!(invalid[2]["errors"]["stage"].is_string());
    let text = b.to_string();
    for value in [
        "not-an-email",
        "Secret Person",
        "0712",
        "Nobody",
        "Not A Stage",
        "erased@",
        "Erased Person",
    ] {
        assert!(
            !text.contains(value),
            "the report repeats {value:?}: {text}"
        );
    }

    // New leads: the intake shape, plus the batch's basis and the import.
    let one = lead_item(&t, &a, &lead_id_of(&t, &a, "new.one@example.com"))
        .await
        .expect("imported");
    assert_eq!(
        s(&one, "name"),
        Some("New One"),
        "the first row of a person wins"
    );
    assert_eq!(s(&one, "phone"), Some("+40712000001"));
    assert_eq!(s(&one, "company"), Some("Acme"));
    assert_eq!(s(&one, "legal_basis"), Some("legitimate_interest"));
    assert_eq!(s(&one, "source_import_id"), Some(upload.as_str()));
    assert_eq!(
        s(&one, "tenant_pk"),
        Some(shared_core::keys::leads_of_tenant(&a).as_str()),
        "listed and exported like any lead"
    );
    assert_eq!(s(&one, "stage"), Some("new"));
    assert!(
        s(&one, "created_sk").is_some()
            && s(&one, "email_bidx").is_some()
            && s(&one, "phone_bidx").is_some()
    );
    let two = lead_item(&t, &a, &lead_id_of(&t, &a, "new.two@example.com"))
        .await
        .expect("imported");
    assert_eq!(s(&two, "email"), Some("new.two@example.com"));
    assert_eq!(s(&two, "stage"), Some("qualified"));
    assert_eq!(
        s(&two, "stage_pk"),
        Some(shared_core::keys::leads_in_stage(&a, "qualified").as_str())
    );

    // Existing leads: blanks filled, nothing overwritten, restricted untouched.
    let filled = lead_item(&t, &a, &blank).await.unwrap();
    assert_eq!(s(&filled, "name"), Some("Filled Name"));
    assert_eq!(s(&filled, "company"), Some("Known Co"));
    assert_eq!(s(&filled, "last_import_id"), Some(upload.as_str()));
    assert_eq!(filled["version"], AttributeValue::N("2".into()));
    assert_eq!(
        s(&lead_item(&t, &a, &complete).await.unwrap(), "name"),
        Some("Kept Name")
    );
    let r_item = lead_item(&t, &a, &restricted).await.unwrap();
    assert!(!r_item.contains_key("name") && !r_item.contains_key("last_import_id"));

    // Suppressed people are not stored, by email or by phone.
    assert!(lead_item(&t, &a, &lead_id_of(&t, &a, "erased@example.com"))
        .await
        .is_none());
    assert!(lead_item(&t, &a, &lead_id_of(&t, &a, "other@example.com"))
        .await
        .is_none());
    assert_eq!(
        t.w.items_with_sk_prefix("LeadsTable", "LEAD").await.len(),
        5
    );

    // The import record keeps the basis, the source and the report; the file is gone.
    let rec = t.w.items_with_sk_prefix("LeadsTable", "IMPORT#").await;
    assert_eq!(rec.len(), 1);
    assert_eq!(s(&rec[0], "status"), Some("completed"));
    assert_eq!(s(&rec[0], "legal_basis"), Some("legitimate_interest"));
    assert_eq!(s(&rec[0], "source"), Some("Trade fair 2026 business cards"));
    let stored: Value = serde_json::from_str(s(&rec[0], "report").unwrap()).unwrap();
    assert_eq!(stored["imported"], 2);
    let key = format!("imports/{a}/{upload}.csv");
    assert!(
        t.w.clients
            .s3
            .head_object()
            .bucket(&t.exports_bucket)
            .key(&key)
            .send()
            .await
            .is_err(),
        "the uploaded file is deleted"
    );

    // An upload is imported once.
    let r = call(
        &t,
        "POST",
        "/v1/imports",
        Some(json!({
            "upload_id": upload, "legal_basis": "consent", "source": "again"
        })),
        &admin,
    )
    .await;
    assert!(matches!(r.status, 404 | 409), "{}", r.body);
}

#[tokio::test]
async fn an_import_needs_a_legal_basis_a_source_its_own_upload_and_the_import_permission() {
    let t = setup().await;
    let a = t.w.tenant.clone();
    let b = TenantId::parse("tenant-b").unwrap();
    let owner = token(&t, &a, Role::Owner).await;
    let upload = upload_csv(&t, &owner, "email\nx@example.com\n").await;

    let r = call(
        &t,
        "POST",
        "/v1/imports",
        Some(json!({"upload_id": upload, "source": "fair"})),
        &owner,
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_fields"));
    assert!(r.body["error"]["fields"]["legal_basis"]
        .as_str()
        .unwrap()
        .contains("is required"));
    let r = call(
        &t,
        "POST",
        "/v1/imports",
        Some(json!({"upload_id": upload, "legal_basis": "because", "source": ""})),
        &owner,
    )
    .await;
    assert!(r.body["error"]["fields"]["legal_basis"]
        .as_str()
        .unwrap()
        .contains("must be one of"));
    assert!(r.body["error"]["fields"]["source"].is_string());
    let r = call(
        &t,
        "POST",
        "/v1/imports",
        Some(json!({"upload_id": upload, "legal_basis": "consent", "source": "x".repeat(201)})),
        &owner,
    )
    .await;
    assert!(r.body["error"]["fields"]["source"].is_string());
    let r = call(
        &t,
        "POST",
        "/v1/imports",
        Some(json!({"upload_id": "../../x", "legal_basis": "consent", "source": "s"})),
        &owner,
    )
    .await;
    assert!(r.body["error"]["fields"]["upload_id"].is_string());
    assert!(
        t.w.items_with_sk_prefix("LeadsTable", "IMPORT#")
            .await
            .is_empty(),
        "nothing claimed"
    );

    // Tenant B cannot import tenant A's upload (its key names A), nor a missing one.
    let b_owner = token(&t, &b, Role::Owner).await;
    let body = json!({"upload_id": upload, "legal_basis": "consent", "source": "s"});
    let r = call(&t, "POST", "/v1/imports", Some(body.clone()), &b_owner).await;
    assert_eq!((r.status, r.code()), (404, "upload_not_found"));
    let r = call(
        &t,
        "POST",
        "/v1/imports",
        Some(json!({"upload_id": "im-missing", "legal_basis": "consent", "source": "s"})),
        &owner,
    )
    .await;
    assert_eq!((r.status, r.code()), (404, "upload_not_found"));

    // Members may write leads but not import; viewers neither.
    for role in [Role::Member, Role::Viewer, Role::Billing] {
        let tok = token(&t, &a, role).await;
        assert_eq!(
            call(&t, "POST", "/v1/imports", Some(body.clone()), &tok)
                .await
                .status,
            403,
            "{role:?}"
        );
        assert_eq!(
            call(
                &t,
                "POST",
                "/v1/imports/uploads",
                Some(json!({"size": 10})),
                &tok
            )
            .await
            .status,
            403
        );
    }
    // Whole-file refusals write nothing.
    let bad = upload_csv(&t, &owner, "shoe_size\n42\n").await;
    let r = call(
        &t,
        "POST",
        "/v1/imports",
        Some(json!({"upload_id": bad, "legal_basis": "consent", "source": "s"})),
        &owner,
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_csv_header"));
    let r = call(
        &t,
        "POST",
        "/v1/imports/uploads",
        Some(json!({"size": 10 * 1024 * 1024 + 1})),
        &owner,
    )
    .await;
    assert!(r.body["error"]["fields"]["size"].is_string());

    let r = call(&t, "POST", "/v1/imports", Some(body), &owner).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["imported"], 1);
    let lead = lead_item(&t, &a, &lead_id_of(&t, &a, "x@example.com"))
        .await
        .unwrap();
    assert_eq!(s(&lead, "legal_basis"), Some("consent"));
    assert!(
        lead_item(&t, &b, &lead_id_of(&t, &b, "x@example.com"))
            .await
            .is_none(),
        "nothing in B"
    );
}

// ---------------------------------------------------------------- sessions that end

/// Writes compare the token's credential epoch (and the session's) with the user's: after a
/// password reset, a token issued before it starts no export, import or upload, even through a
/// session whose revocation was lost (the reset committed, the function stopped before ending
/// sessions), within the token's 15 minutes.
#[tokio::test]
async fn a_token_issued_before_a_password_reset_cannot_start_an_export_or_an_import() {
    let t = setup().await;
    let tenant = TenantId::parse(&unique("tn")).unwrap();
    let (user, sid, bearer) = member(&t, &tenant, Role::Owner).await;
    let login =
        shared_accounts::dynamo::login_item(&t.w.key.email(&user.email), &tenant, &user.user_id);
    put(&t, &t.w.table("TenantsTable"), login).await;
    seed_lead(&t, &tenant, "before-reset@example.com", None, false).await;
    let upload = json!({"size": 10});
    let r = call(
        &t,
        "POST",
        "/v1/imports/uploads",
        Some(upload.clone()),
        &bearer,
    )
    .await;
    assert_eq!(
        r.status, 201,
        "the token writes before the reset: {}",
        r.body
    );
    let exports_before = t.w.scan("LeadsTable").await.len();

    t.w.reset_password(user.email.as_str(), "Quartz-Meadow-Lantern-77")
        .await;
    t.w.lose_revocation(&sid).await;

    for (path, body) in [
        ("/v1/exports", json!({"format": "csv"})),
        ("/v1/imports", json!({"upload_id": "up-any"})),
        ("/v1/imports/uploads", upload),
    ] {
        let r = call(&t, "POST", path, Some(body), &bearer).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "session_ended"),
            "{path}: {}",
            r.body
        );
    }
    assert_eq!(
        t.w.scan("LeadsTable").await.len(),
        exports_before,
        "no export or import record written"
    );
}

// ---------------------------------------------------------------- exports

async fn export(t: &T, bearer: &str, format: &str) -> (Reply, Vec<u8>) {
    let r = call(
        t,
        "POST",
        "/v1/exports",
        Some(json!({"format": format})),
        bearer,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.str("download_url");
    assert!(url.contains("X-Amz-Expires=900"), "15 minutes: {url}");
    let got = http("GET", &url, &[], b"").await;
    assert_eq!(got.status, 200);
    assert!(got.headers["content-disposition"].starts_with("attachment;"));
    (r, got.body)
}

#[tokio::test]
async fn exports_stream_every_unrestricted_lead_once_as_csv_and_json_per_tenant() {
    // Parts of 4 KiB (the emulator allows it here): a few hundred leads make several parts.
    let settings = Settings {
        export_part_bytes: TEST_PART_BYTES,
        export_page_size: 40,
        ..Settings::default()
    };
    let t = setup_with(settings).await;
    let a = t.w.tenant.clone();
    let b = TenantId::parse("tenant-b").unwrap();
    let mut expected = BTreeSet::new();
    for i in 0..150 {
        let name = if i == 7 {
            "=cmd|' /C calc'!A0".to_string()
        } else {
            format!("Person, \"{i}\"")
        };
        expected.insert(
            seed_lead(&t, &a, &format!("p{i}@example.com"), Some(&name), false)
                .await
                .to_string(),
        );
    }
    let hidden = seed_lead(&t, &a, "restricted@example.com", None, true).await;
    let b_lead = seed_lead(&t, &b, "b.person@example.com", Some("Bee"), false).await;
    let admin = token(&t, &a, Role::Admin).await;

    let (r, csv_bytes) = export(&t, &admin, "csv").await;
    assert_eq!(r.body["count"], 150);
    let mut rd = csv::Reader::from_reader(csv_bytes.as_slice());
    assert_eq!(
        rd.headers().unwrap().iter().collect::<Vec<_>>(),
        lead_transfers::export_writer::CSV_COLUMNS
    );
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    let ids: BTreeSet<String> = rows.iter().map(|r| r[0].to_string()).collect();
    assert_eq!(rows.len(), 150, "each lead once");
    assert_eq!(ids, expected);
    assert!(!ids.contains(hidden.as_str()) && !ids.contains(b_lead.as_str()));
    let p7 = rows.iter().find(|r| &r[1] == "p7@example.com").unwrap();
    assert_eq!(&p7[3], "'=cmd|' /C calc'!A0", "formula defused");
    let p8 = rows.iter().find(|r| &r[1] == "p8@example.com").unwrap();
    assert_eq!(&p8[3], "Person, \"8\"");
    assert_eq!(&p8[5], "new");
    assert!(
        csv_bytes.len() > 2 * TEST_PART_BYTES,
        "several parts: {}",
        csv_bytes.len()
    );

    let (r, json_bytes) = export(&t, &admin, "json").await;
    assert_eq!(r.body["count"], 150);
    let v: Value = serde_json::from_slice(&json_bytes).expect("one JSON document");
    let ids: BTreeSet<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, expected);
    let l7 = v
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["email"] == "p7@example.com")
        .unwrap();
    assert_eq!(l7["name"], "=cmd|' /C calc'!A0", "JSON keeps data as is");

    // Tenant B sees only its own lead; files live under the tenant's prefix.
    let b_owner = token(&t, &b, Role::Owner).await;
    let (r, bytes) = export(&t, &b_owner, "json").await;
    assert_eq!(r.body["count"], 1);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v[0]["id"], b_lead.as_str());
    assert!(r.str("download_url").contains(&format!("/exports/{b}/")));

    let records = t.w.items_with_sk_prefix("LeadsTable", "EXPORT#").await;
    assert_eq!(records.len(), 3);
    assert!(records
        .iter()
        .all(|r| s(r, "object_key").unwrap().starts_with("exports/")));

    // Only owners and admins export; the format is checked.
    for role in [Role::Member, Role::Viewer, Role::Billing] {
        let tok = token(&t, &a, role).await;
        assert_eq!(
            call(
                &t,
                "POST",
                "/v1/exports",
                Some(json!({"format": "csv"})),
                &tok
            )
            .await
            .status,
            403
        );
    }
    let r = call(
        &t,
        "POST",
        "/v1/exports",
        Some(json!({"format": "xml"})),
        &admin,
    )
    .await;
    assert!(r.body["error"]["fields"]["format"].is_string());
}

#[tokio::test]
async fn an_empty_tenant_exports_an_empty_file() {
    let t = setup().await;
    let owner = token(&t, &TenantId::parse("tenant-empty").unwrap(), Role::Owner).await;
    let (r, bytes) = export(&t, &owner, "json").await;
    assert_eq!(r.body["count"], 0);
    assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), json!([]));
    let (_, bytes) = export(&t, &owner, "csv").await;
    assert_eq!(
        String::from_utf8(bytes).unwrap().lines().count(),
        1,
        "the header alone"
    );
}

// ---------------------------------------------------------------- authentication, inventory, logs

#[tokio::test]
async fn every_route_needs_a_token_and_writes_need_a_live_session() {
    let t = setup().await;
    let a = t.w.tenant.clone();
    let lead = seed_lead(&t, &a, "auth@example.com", None, false).await;
    for route in lead_transfers::routes::ROUTES {
        let path = route
            .path
            .replace("{leadId}", lead.as_str())
            .replace("{attachmentId}", "at-1");
        let r = send(&t, event(route.method, &path, &[], Some(&json!({})), None)).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "unauthorized"),
            "{} {path}",
            route.method
        );
        let r = send(
            &t,
            event(
                route.method,
                &path,
                &[],
                Some(&json!({})),
                Some("not.a.token"),
            ),
        )
        .await;
        assert_eq!(r.status, 401);
    }
    // A revoked session stops writes at once.
    let owner = token(&t, &a, Role::Owner).await;
    let sessions = t.w.scan("TenantsTable").await;
    let sid = sessions
        .iter()
        .filter_map(|it| s(it, "session_id"))
        .next_back()
        .unwrap()
        .to_string();
    t.w.clients
        .dynamo
        .update_item()
        .table_name(t.w.table("TenantsTable"))
        .key("pk", AttributeValue::S(format!("SESSION#{sid}")))
        .key("sk", AttributeValue::S("SESSION".into()))
        .update_expression("SET revoked_at = :now")
        .expression_attribute_values(
            ":now",
            AttributeValue::S(shared_core::clock::rfc3339(t.w.clock.now())),
        )
        .send()
        .await
        .unwrap();
    let r = call(
        &t,
        "POST",
        "/v1/exports",
        Some(json!({"format": "csv"})),
        &owner,
    )
    .await;
    assert_eq!((r.status, r.code()), (401, "session_ended"));
    assert_eq!(
        call(&t, "GET", &attachments_path(&lead), None, &owner)
            .await
            .status,
        200,
        "reads trust the token"
    );
}

#[tokio::test]
async fn every_attribute_written_is_in_the_inventory_and_no_personal_data_reaches_the_logs() {
    let t = setup().await;
    let a = t.w.tenant.clone();
    let owner = token(&t, &a, Role::Owner).await;
    let (logs, _guard) = shared_core::telemetry::capture();

    seed_lead(&t, &a, "known.person@example.com", None, false).await;
    let upload = upload_csv(&t, &owner, "email,name,phone,company\nvery.private@example.org,Privatus Maximus,+40799111222,Hidden Co\nknown.person@example.com,Known Person,,\nbroken@,Broken Person,,\n").await;
    let r = call(
        &t,
        "POST",
        "/v1/imports",
        Some(json!({"upload_id": upload, "legal_basis": "contract", "source": "CRM migration"})),
        &owner,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let lead = lead_id_of(&t, &a, "very.private@example.org");
    let r = call(&t, "POST", &attachments_path(&lead), Some(json!({"filename": "Privatus Maximus CV.pdf", "content_type": "application/pdf", "size": 10})), &owner).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        call(
            &t,
            "POST",
            "/v1/exports",
            Some(json!({"format": "csv"})),
            &owner
        )
        .await
        .status,
        201
    );

    for item in t.w.scan("LeadsTable").await {
        let sk = s(&item, "sk").unwrap_or_default().to_string();
        for name in item.keys() {
            assert!(
                inventory::declaration(Table::Leads, &sk, name).is_some(),
                "LeadsTable item {sk:?} stores undeclared attribute {name:?}"
            );
        }
    }

    assert_logs_hold_without(
        &logs,
        &[
            "import completed",
            "export completed",
            "attachment upload signed",
        ],
        &[
            "very.private",
            "Privatus",
            "+40799111222",
            "40799111222",
            "Hidden Co",
            "Known Person",
            "broken@",
            "CRM migration",
        ],
    );
}

// ---------------------------------------------------------------- bodies that are not UTF-8

/// Every route that reads a body answers one that is not UTF-8 (base64-encoded by API Gateway)
/// with a 4xx JSON error, whatever the content type, and stores nothing.
#[tokio::test]
async fn bodies_that_are_not_utf8_are_4xx_on_every_route_and_store_nothing() {
    let t = setup().await;
    let tenant = t.w.tenant.clone();
    let owner = token(&t, &tenant, Role::Owner).await;
    let lead = seed_lead(&t, &tenant, "utf8@example.com", Some("Ana"), false).await;
    let lead = lead.to_string();
    let before = t.w.snapshot().await;
    let mut calls = 0;
    for route in lead_transfers::routes::ROUTES
        .iter()
        .filter(|r| r.method != "GET")
    {
        let path = concrete_path(route.path, &[("leadId", &lead)]);
        for bytes in NOT_UTF8_BODIES {
            for ct in BODY_CONTENT_TYPES {
                let e = http_event(route.method, &path, Some(&owner));
                let resp = lead_transfers::handle(&t.app, with_base64_body(e, bytes, ct)).await;
                assert_json_client_error(&resp, &format!("{} {path} {ct} {bytes:?}", route.method));
                calls += 1;
            }
        }
    }
    assert!(calls > 0);
    assert_eq!(t.w.snapshot().await, before, "nothing stored");
}

// ---------------------------------------------------------------- uploads that outlive their lead

/// The leads-api function's app over this world (for `DELETE /v1/leads/{id}`), its
/// configuration as the template gives it.
async fn leads_api_app(t: &T) -> leads_api::App {
    let env = infra::local::local_function_env(&t.w.template, "leads-api", emulator_endpoint())
        .expect("leads-api env");
    let config = leads_api::config::Config::from_env(&Env::from_pairs(env)).expect("config");
    leads_api::App {
        store: shared_leads::dynamo::LeadsStore::new(
            t.w.clients.dynamo.clone(),
            config.tables.clone(),
        ),
        s3: t.w.clients.s3.clone(),
        attachments_bucket: config.attachments_bucket.clone(),
        keys: t.w.key.clone(),
        verifier: t.w.token_verifier("leads-api").await.expect("public keys"),
        clock: t.w.clock.clone(),
        ids: Arc::new(UlidGenerator),
        api_base_url: config.api_base_url.clone(),
        intake: leads_api::release_intake(
            &config,
            t.w.clients.dynamo.clone(),
            t.w.clock.clone(),
            Arc::new(UlidGenerator),
            t.w.key.clone(),
        ),
    }
}

/// A signed upload for `lead`: (attachment id, URL, headers, file).
async fn signed_upload(
    t: &T,
    lead: &LeadId,
    bearer: &str,
) -> (String, String, Vec<(String, String)>, Vec<u8>) {
    let file = b"%PDF-1.7\n% a contract\n".repeat(20);
    let r = call(
        t,
        "POST",
        &attachments_path(lead),
        Some(json!({"filename": "contract.pdf", "content_type": "application/pdf", "size": file.len()})),
        bearer,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (
        r.str("id"),
        r.str("upload_url"),
        upload_headers(&r.body),
        file,
    )
}

/// Current objects (not noncurrent versions) under `prefix` of the attachments bucket.
async fn objects_under(t: &T, prefix: &str) -> Vec<String> {
    t.w.clients
        .s3
        .list_objects_v2()
        .bucket(&t.attachments_bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap()
        .contents
        .unwrap_or_default()
        .into_iter()
        .filter_map(|o| o.key)
        .collect()
}

/// Uploads signed before their lead was deleted, sent after: S3 notifies attachment-guard,
/// which deletes them (and nothing of a live lead). Also an upload landing while a delete is
/// under way (the lead claimed, its objects already listed): the claim is enough.
#[tokio::test]
async fn an_upload_that_lands_after_its_lead_was_deleted_is_deleted_on_arrival() {
    let t = setup().await;
    let a = t.w.tenant.clone();
    let owner = token(&t, &a, Role::Owner).await;
    let guard = t.w.attachment_guard();
    let leads_api = leads_api_app(&t).await;
    let event = |key: &str| t.w.object_created_event(&t.attachments_bucket, key);

    // A live lead's upload stays.
    let bob = seed_lead(&t, &a, "bob.live@example.com", None, false).await;
    let (_, url, headers, file) = signed_upload(&t, &bob, &owner).await;
    assert_eq!(http("PUT", &url, &headers, &file).await.status, 200);
    let bob_prefix = shared_core::keys::lead_objects_prefix(&a, &bob);
    let bob_key = objects_under(&t, &bob_prefix).await.remove(0);
    let report = attachment_guard::handle(&guard, &event(&bob_key))
        .await
        .unwrap();
    assert_eq!((report.kept, report.deleted), (1, 0));
    assert_eq!(
        objects_under(&t, &bob_prefix).await,
        std::slice::from_ref(&bob_key)
    );

    // Ana's upload is signed, then Ana's lead is deleted, then the file is sent.
    let ana = seed_lead(&t, &a, "ana.gone@example.com", Some("Ana"), false).await;
    let (id, url, headers, file) = signed_upload(&t, &ana, &owner).await;
    let deleted = leads_api::handle(
        &leads_api,
        event_for_leads_api("DELETE", &format!("/v1/leads/{ana}"), &owner),
    )
    .await;
    assert_eq!(deleted.status(), 204, "{}", response_json(&deleted));
    assert!(lead_item(&t, &a, &ana).await.is_none());
    let put = http("PUT", &url, &headers, &file).await;
    assert_eq!(put.status, 200, "the URL is still valid: S3 takes the file");
    let ana_prefix = shared_core::keys::lead_objects_prefix(&a, &ana);
    let key = format!("{ana_prefix}{id}");
    assert_eq!(
        objects_under(&t, &ana_prefix).await,
        std::slice::from_ref(&key)
    );

    let report = attachment_guard::handle(&guard, &event(&key))
        .await
        .unwrap();
    assert_eq!((report.kept, report.deleted), (0, 1));
    assert!(
        objects_under(&t, &ana_prefix).await.is_empty(),
        "no object of the deleted lead remains"
    );
    // In the deployed (versioned) bucket the delete leaves a noncurrent version, which the
    // bucket's expire-erased-versions rule removes, as for every deleted attachment (the
    // emulator's buckets are not versioned).

    // Carl's delete is under way: claimed (`deleting_at`), objects already listed, items not
    // yet deleted. An upload landing now is deleted too.
    let carl = seed_lead(&t, &a, "carl.going@example.com", None, false).await;
    let (id, url, headers, file) = signed_upload(&t, &carl, &owner).await;
    leads_api
        .store
        .claim_for_deletion(&a, &carl, t.w.clock.now())
        .await
        .unwrap();
    assert_eq!(http("PUT", &url, &headers, &file).await.status, 200);
    let carl_prefix = shared_core::keys::lead_objects_prefix(&a, &carl);
    let report = attachment_guard::handle(&guard, &event(&format!("{carl_prefix}{id}")))
        .await
        .unwrap();
    assert_eq!((report.kept, report.deleted), (0, 1));
    assert!(objects_under(&t, &carl_prefix).await.is_empty());

    // Neither another bucket's event nor a key the platform never signs is touched.
    let stray = format!("{bob_prefix}not-signed/x");
    let report = attachment_guard::handle(&guard, &event(&stray))
        .await
        .unwrap();
    assert_eq!(report.ignored, 1);
    let report = attachment_guard::handle(
        &guard,
        &t.w.object_created_event(&t.exports_bucket, &bob_key),
    )
    .await
    .unwrap();
    assert_eq!((report.ignored, report.deleted), (1, 0));
    assert_eq!(objects_under(&t, &bob_prefix).await.len(), 1);
}

/// A leads-api event for `method path` with `bearer` (API Gateway v2, as the app API sends).
fn event_for_leads_api(method: &str, path: &str, bearer: &str) -> Request {
    event(method, path, &[], None, Some(bearer))
}
