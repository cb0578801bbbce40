//! The execution of approved data-subject requests (`dsar-worker`) against the emulator: each
//! request type end to end, exports downloaded through the presigned links read from the emails
//! the emulator accepted, erasure proven by scanning every table and bucket, resumption after an
//! interrupted run, duplicate invocations, and logs free of personal data.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::*;
use serde_json::{json, Value};
use shared_core::clock::UlidGenerator;
use shared_core::config::Env;
use shared_core::domain::{Email, FormId, TenantId, TenantStatus};
use shared_core::dynamo::Item;
use shared_core::error::AppError;
use shared_mail::SesMailer;
use shared_privacy::dsar::checkpoint::CheckpointStore;
use shared_privacy::dsar::export::Exports;
use shared_privacy::dsar::job::{
    DsarJob, JobDispatcher, JobKind, JobOutcome, JobScope, JobSubject, RequestProgress,
};
use shared_privacy::dsar::subjects::SubjectStore;
use shared_privacy::dsar::worker::{RunResult, Steps, Unlimited, Worker};
use shared_privacy::inventory::{self, Table};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------- fakes of the lifecycle

/// The reports, and the request records the lifecycle would hold (by request id).
#[derive(Clone, Default)]
struct Progress(
    Arc<Mutex<Vec<String>>>,
    Arc<Mutex<BTreeMap<String, JobSubject>>>,
);

impl Progress {
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl RequestProgress for Progress {
    async fn started(&self, job: &DsarJob) -> Result<(), AppError> {
        self.0
            .lock()
            .unwrap()
            .push(format!("started {}", job.request_id));
        Ok(())
    }
    async fn completed(&self, job: &DsarJob, outcome: &JobOutcome) -> Result<(), AppError> {
        self.0.lock().unwrap().push(format!(
            "completed {} {}",
            job.request_id,
            serde_json::to_string(&outcome.counts).unwrap()
        ));
        Ok(())
    }
    async fn failed(&self, job: &DsarJob, reason: &str) -> Result<(), AppError> {
        self.0
            .lock()
            .unwrap()
            .push(format!("failed {} {reason}", job.request_id));
        Ok(())
    }
    async fn subject(&self, request_id: &str) -> Result<Option<JobSubject>, AppError> {
        Ok(self.1.lock().unwrap().get(request_id).cloned())
    }
}

#[derive(Clone, Default)]
struct Dispatcher(Arc<Mutex<Vec<DsarJob>>>);

impl JobDispatcher for Dispatcher {
    async fn dispatch(&self, job: &DsarJob) -> Result<(), AppError> {
        self.0.lock().unwrap().push(job.clone());
        Ok(())
    }
}

type TestWorker = Worker<Progress, Dispatcher, SesMailer>;

struct Fx {
    w: World,
    worker: TestWorker,
    progress: Progress,
    dispatcher: Dispatcher,
    exports_bucket: String,
    attachments_bucket: String,
}

async fn fx() -> Fx {
    let w = World::new().await.expect("world");
    let endpoint = emulator_endpoint();
    let env = infra::local::local_function_env(&w.template, "dsar-worker", endpoint).unwrap();
    let config = dsar_worker::config::Config::from_env(&Env::from_pairs(env)).unwrap();
    let ses = infra::emulator::sesv2_client(endpoint);
    infra::seed::ensure_secrets(&w.clients, &ses, &w.template)
        .await
        .unwrap();
    let progress = Progress::default();
    let dispatcher = Dispatcher::default();
    let worker = Worker {
        store: SubjectStore::new(w.clients.dynamo.clone(), config.tables.clone()),
        checkpoints: CheckpointStore::new(w.clients.dynamo.clone(), config.tables.ops.clone(), 30),
        exports: Exports {
            s3: w.clients.s3.clone(),
            bucket: config.exports_bucket.clone(),
            part_bytes: 5 * 1024 * 1024,
        },
        attachments_bucket: config.attachments_bucket.clone(),
        mailer: SesMailer::new(ses, config.sender_email.clone()),
        progress: progress.clone(),
        dispatcher: dispatcher.clone(),
        keys: w.key.clone(),
        clock: w.clock.clone(),
        ids: Arc::new(UlidGenerator),
        settings: config.settings.clone(),
    };
    Fx {
        exports_bucket: config.exports_bucket.clone(),
        attachments_bucket: config.attachments_bucket.clone(),
        w,
        worker,
        progress,
        dispatcher,
    }
}

fn job(scope: JobScope, kind: JobKind, email: &str) -> DsarJob {
    DsarJob {
        request_id: format!("dsr_{}", ulid::Ulid::new().to_string().to_lowercase()),
        scope,
        kind,
        subject_email: email.to_string(),
    }
}

fn tenant_scope(t: &TenantId) -> JobScope {
    JobScope::Tenant {
        tenant_id: t.clone(),
    }
}

/// A submission to `form` (the demo form of tenant-a, or another tenant's), returning the lead id.
async fn submit(w: &World, form: &str, body: Value) -> String {
    let mut e = json_submission(&body);
    e["rawPath"] = json!(format!("/v1/forms/{form}/submissions"));
    e["requestContext"]["http"]["path"] = json!(format!("/v1/forms/{form}/submissions"));
    e["pathParameters"]["formId"] = json!(form);
    let resp = lead_intake::handle(&w.intake(None), request(&e)).await;
    assert_eq!(resp.status(), 201, "{:?}", response_json(&resp));
    response_json(&resp)["lead_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A second tenant with its own form.
async fn other_tenant(w: &World) -> TenantId {
    let t = TenantId::parse("tenant-b").unwrap();
    let form = infra::seed::demo_form(&t, &FormId::parse("form-b").unwrap(), WEB_ORIGIN);
    w.put_tenant(&t, TenantStatus::Active, &form).await.unwrap();
    t
}

fn body(email: &str, name: &str, message: &str) -> Value {
    json!({"email": email, "name": name, "company": "Pop SRL", "message": message, "consent_marketing": true})
}

/// The download links of the last email the emulator accepted for `to`.
fn links(w: &World, to: &str) -> Vec<String> {
    let mails = w.emails_to(to);
    let last = mails.last().expect("an email to the subject");
    let mut out = Vec::new();
    let mut rest = last.body.as_str();
    while let Some(i) = rest.find("href=\"") {
        rest = &rest[i + 6..];
        let end = rest.find('"').unwrap();
        out.push(rest[..end].replace("&amp;", "&"));
        rest = &rest[end..];
    }
    out
}

/// The dsar function's download route, as the template configures it for this world.
fn downloads(w: &World) -> dsar::downloads::Downloads {
    let env = infra::local::local_function_env(&w.template, "dsar", emulator_endpoint()).unwrap();
    let c = dsar::config::Config::from_env(&Env::from_pairs(env)).unwrap();
    dsar::downloads::Downloads {
        s3: w.clients.s3.clone(),
        exports_bucket: c.exports_bucket,
        attachments_bucket: c.attachments_bucket,
    }
}

/// The signed token of an emailed download link (every link must be the platform's route).
fn token_of(url: &str) -> String {
    let (_, t) = url
        .split_once("/v1/privacy/downloads?t=")
        .unwrap_or_else(|| panic!("not a download-route link: {url}"));
    t.to_string()
}

/// The object an emailed link opens (from its signed token).
fn object_of(w: &World, url: &str) -> String {
    use shared_core::clock::Clock;
    shared_privacy::dsar::tokens::DownloadToken::verify(
        &w.key,
        &token_of(url),
        w.clock.now().unix_timestamp(),
    )
    .expect("a valid link")
    .key
}

/// Follows an emailed link as the subject's browser would: the platform's download route
/// (called through the dsar function's handler code) answers 302 to a short-lived URL of the
/// emulator, which serves the object.
async fn download(w: &World, url: &str) -> (u16, Vec<u8>) {
    use shared_core::clock::Clock;
    let resp = dsar::downloads::download(&downloads(w), &w.key, Some(token_of(url)), w.clock.now())
        .await
        .expect("a valid link");
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.contains("X-Amz-Expires=60"),
        "the redirect is presigned for seconds: {location}"
    );
    download_presigned(&location).await
}

/// GET through a presigned URL of the emulator (loopback only).
async fn download_presigned(url: &str) -> (u16, Vec<u8>) {
    let rest = url
        .strip_prefix("http://")
        .expect("http URL of the emulator");
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    assert!(
        authority.starts_with("127.0.0.1:"),
        "only the local emulator"
    );
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    (status, body)
}

async fn download_json(w: &World, url: &str) -> Value {
    let (status, body) = download(w, url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("a JSON export")
}

fn completed(r: RunResult) -> JobOutcome {
    match r {
        RunResult::Completed(o) => o,
        other => panic!("expected completion, got {other:?}"),
    }
}

/// Every item of every table of the template, with the table's inventory name.
async fn everything(w: &World) -> Vec<(Table, Item)> {
    let tables = [
        ("TenantsTable", Table::Tenants),
        ("SecurityLogTable", Table::SecurityLog),
        ("LeadsTable", Table::Leads),
        ("PrivacyTable", Table::Privacy),
        ("OpsTable", Table::Ops),
        ("BillingTable", Table::Billing),
        ("PlansTable", Table::Plans),
    ];
    let mut all = Vec::new();
    for (id, t) in tables {
        for it in w.scan(id).await {
            all.push((t, it));
        }
    }
    all
}

fn item_text(it: &Item) -> String {
    format!("{it:?}")
}

async fn object_keys(w: &World, bucket: &str) -> Vec<String> {
    let out = w
        .clients
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

async fn put_object(w: &World, bucket: &str, key: &str, body: &str) {
    w.clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
}

/// Every attribute of every item stored is declared in the inventory.
async fn assert_all_declared(w: &World) {
    for (table, it) in everything(w).await {
        let sk = it
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        for name in it.keys() {
            assert!(
                inventory::declaration(table, &sk, name).is_some(),
                "{table:?} item {sk:?} stores undeclared attribute {name:?}"
            );
        }
    }
}

// ---------------------------------------------------------------- access and portability

#[tokio::test]
async fn access_export_holds_every_attribute_by_category_and_the_art15_facts() {
    let f = fx().await;
    let w = &f.w;
    let tb = other_tenant(w).await;
    let ana = "ana.access@example.com";
    let lead = submit(w, "demo-contact", body(ana, "Ana Pop", "first")).await;
    submit(w, "demo-contact", body(ana, "Ana Pop", "second")).await;
    submit(
        w,
        "demo-contact",
        body("bob.access@example.com", "Bob", "other person"),
    )
    .await;
    submit(w, "form-b", body(ana, "Ana B", "other tenant")).await;

    let (logs, guard) = capture_logs();
    let j = job(tenant_scope(&w.tenant), JobKind::Access, ana);
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    drop(guard);
    assert_eq!(out.counts["lead"], 1);
    assert_eq!(out.counts["submission"], 2);
    assert_eq!(out.export_keys.len(), 1);
    assert!(out.export_keys[0].starts_with(&format!("dsar/tenants/{}/", w.tenant)));

    let urls = links(w, ana);
    assert_eq!(urls.len(), 1);
    let doc = download_json(w, &urls[0]).await;
    assert_eq!(doc["request_id"], j.request_id);
    let facts = &doc["facts"];
    assert!(facts["complaint"].as_str().unwrap().contains("supervisory"));
    // Where the data is comes from the deployment's configuration (`AWS_REGION`: the local
    // stack's region), never a constant.
    assert_eq!(
        facts["data_location"]["region"],
        infra::template::LOCAL_REGION
    );
    assert_eq!(facts["data_location"]["in_eea"], false);
    assert!(facts["data_location"]["transfers_outside_eea"]
        .as_str()
        .unwrap()
        .contains("Standard Contractual Clauses"));
    assert!(facts["categories"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["retention"].as_str().is_some() && c["recipients"].as_str().is_some()));
    let records = doc["records"].as_array().unwrap();
    let lead_rec = records.iter().find(|r| r["kind"] == "lead").unwrap();
    assert_eq!(lead_rec["categories"]["crm_content"]["email"]["value"], ana);
    assert_eq!(lead_rec["record"]["lead_id"], lead);
    let subs: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "submission")
        .collect();
    assert_eq!(subs.len(), 2);
    for s in &subs {
        assert!(s["categories"]["technical_usage"]["ip"]["value"].is_string());
        assert!(s["categories"]["marketing_preferences"]["consents"]["value"].is_array());
        assert!(s["categories"]["crm_content"]["fields"]["description"].is_string());
    }
    let text = doc.to_string();
    assert!(!text.contains("bob.access"), "another subject");
    assert!(
        !text.contains("other tenant") && !text.contains(tb.as_str()),
        "another tenant"
    );
    assert_logs_hold_without(&logs, &["job completed", &j.request_id], &[ana, "Ana Pop"]);
    assert_eq!(
        f.progress
            .events()
            .iter()
            .filter(|e| e.starts_with("completed"))
            .count(),
        1
    );
    assert_all_declared(w).await;
}

#[tokio::test]
async fn portability_gives_what_the_subject_provided_as_json_and_csv() {
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.port@example.com";
    submit(w, "demo-contact", body(ana, "Ana Port", "=SUM(A1:A9)")).await;
    let j = job(tenant_scope(&w.tenant), JobKind::Portability, ana);
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(out.export_keys.len(), 2);
    let urls = links(w, ana);
    assert_eq!(urls.len(), 2);
    let json_url = urls
        .iter()
        .find(|u| object_of(w, u).ends_with("provided.json"))
        .unwrap();
    let csv_url = urls
        .iter()
        .find(|u| object_of(w, u).ends_with("provided.csv"))
        .unwrap();
    let doc = download_json(w, json_url).await;
    let provided = doc["provided"].as_array().unwrap();
    let contact = provided.iter().find(|r| r["record"] == "contact").unwrap();
    assert_eq!(contact["fields"]["email"], ana);
    assert_eq!(contact["fields"]["name"], "Ana Port");
    let sub = provided
        .iter()
        .find(|r| r["record"] == "submission")
        .unwrap();
    assert_eq!(sub["fields"]["message"], "=SUM(A1:A9)");
    assert!(sub["fields"]["consent:marketing"]
        .as_str()
        .unwrap()
        .starts_with("granted"));
    assert!(
        doc.to_string().find("\"ip\"").is_none(),
        "observed data is not 'provided'"
    );
    let (status, csv) = download(w, csv_url).await;
    assert_eq!(status, 200);
    let mut rows = csv::Reader::from_reader(&csv[..]);
    assert_eq!(
        rows.headers().unwrap().iter().collect::<Vec<_>>(),
        ["record", "record_id", "at", "field", "value"]
    );
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert!(rows
        .iter()
        .any(|r| &r[0] == "contact" && &r[3] == "email" && &r[4] == ana));
    assert!(
        rows.iter()
            .any(|r| &r[3] == "message" && &r[4] == "'=SUM(A1:A9)"),
        "a formula cell is neutralised"
    );
}

// ---------------------------------------------------------------- erasure

#[tokio::test]
async fn erasure_leaves_nothing_of_the_subject_but_hashes_and_certifies_it() {
    let f = fx().await;
    let w = &f.w;
    let tb = other_tenant(w).await;
    let ana = "ana.erase@example.com";
    let lead = submit(w, "demo-contact", body(ana, "Ana Erase", "please erase")).await;
    submit(w, "demo-contact", body(ana, "Ana Erase", "again")).await;
    let bob_lead = submit(
        w,
        "demo-contact",
        body("bob.erase@example.com", "Bob", "stay"),
    )
    .await;
    let ana_b = submit(w, "form-b", body(ana, "Ana Erase", "other tenant")).await;
    // An attachment of the lead, an earlier DSAR export of the subject, a tenant bulk export.
    let t = w.tenant.as_str();
    let att_key = format!("tenants/{t}/leads/{lead}/att_1");
    put_object(w, &f.attachments_bucket, &att_key, "file of Ana").await;
    put_object(
        w,
        &f.attachments_bucket,
        &format!("tenants/{t}/leads/{bob_lead}/att_2"),
        "Bob's",
    )
    .await;
    put_object(
        w,
        &f.attachments_bucket,
        &format!("tenants/{}/leads/{ana_b}/att_3", tb),
        "B's",
    )
    .await;
    let bidx = w.key.email(&Email::parse(ana).unwrap());
    let earlier = format!("dsar/tenants/{t}/{bidx}/dsr_old/access.json");
    put_object(
        w,
        &f.exports_bucket,
        &earlier,
        "{\"email\":\"ana.erase@example.com\"}",
    )
    .await;
    put_object(
        w,
        &f.exports_bucket,
        &format!("exports/{t}/exp_1.csv"),
        "ana.erase@example.com",
    )
    .await;
    w.clients
        .dynamo
        .put_item()
        .table_name(w.table("LeadsTable"))
        .item("pk", AttributeValue::S(format!("TENANT#{t}#LEAD#{lead}")))
        .item("sk", AttributeValue::S("ATT#att_1".into()))
        .item("tenant_id", AttributeValue::S(t.into()))
        .item("lead_id", AttributeValue::S(lead.clone()))
        .item("attachment_id", AttributeValue::S("att_1".into()))
        .item("filename", AttributeValue::S("ana-cv.pdf".into()))
        .item("object_key", AttributeValue::S(att_key.clone()))
        .send()
        .await
        .unwrap();

    let (logs, guard) = capture_logs();
    let j = job(
        tenant_scope(&w.tenant),
        JobKind::Erasure {
            suppress_phone: false,
        },
        ana,
    );
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    drop(guard);
    assert_eq!(out.counts["lead"], 1);
    assert_eq!(out.counts["submission"], 2);
    assert_eq!(out.counts["attachment_record"], 1);
    assert_eq!(out.counts["attachment_object"], 1);
    assert_eq!(out.counts["earlier_dsar_export_object"], 1);
    assert_eq!(out.counts["tenant_bulk_export_object"], 1);

    // Nothing of Ana in tenant-a: no item names her lead, holds her email or her name; the
    // suppression entry is a keyed hash.
    for (table, it) in everything(w).await {
        let text = item_text(&it);
        let pk = it["pk"].as_s().unwrap();
        if pk.starts_with(&format!("TENANT#{}#", tb)) {
            continue; // the other tenant's own lead of Ana stays (its controller decides)
        }
        assert!(
            !text.contains(&lead),
            "{table:?} still holds the lead: {pk}"
        );
        assert!(!text.contains(ana), "{table:?} still holds the email: {pk}");
        assert!(
            !text.contains("Ana Erase"),
            "{table:?} still holds the name: {pk}"
        );
    }
    let suppressed = w.scan("PrivacyTable").await;
    assert!(suppressed.iter().any(|it| it["pk"].as_s().unwrap()
        == &format!("TENANT#{t}#SUPPRESSION")
        && it["sk"].as_s().unwrap() == &bidx));
    // Bob and the other tenant untouched.
    let leads = w.items_with_sk_prefix("LeadsTable", "LEAD").await;
    assert!(leads
        .iter()
        .any(|l| s(l, "lead_id") == Some(bob_lead.as_str())));
    assert!(leads
        .iter()
        .any(|l| s(l, "lead_id") == Some(ana_b.as_str())));
    let att = object_keys(w, &f.attachments_bucket).await;
    assert!(!att.contains(&att_key));
    assert!(att.iter().any(|k| k.contains(&bob_lead)) && att.iter().any(|k| k.contains(&ana_b)));
    // Every object of both buckets, read back: none holds the person.
    for bucket in [&f.attachments_bucket, &f.exports_bucket] {
        for key in object_keys(w, bucket).await {
            let body = w
                .clients
                .s3
                .get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes();
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains(ana) && !text.contains("Ana Erase") && !text.contains("file of Ana"),
                "{key} still holds the person"
            );
        }
    }
    let exports = object_keys(w, &f.exports_bucket).await;
    assert!(!exports.contains(&earlier) && !exports.iter().any(|k| k.starts_with("exports/")));

    // The certificate, downloaded through the emailed link.
    let urls = links(w, ana);
    assert_eq!(urls.len(), 1, "the certificate's link");
    let cert = download_json(w, &urls[0]).await;
    assert_eq!(cert["request_id"], j.request_id);
    assert_eq!(cert["erased"]["submission"], 2);
    assert!(cert["completed_at"].is_string());
    assert!(
        !cert.to_string().contains(ana),
        "the certificate names a hash, not the person"
    );
    assert_logs_hold_without(
        &logs,
        &["job completed", &j.request_id],
        &[ana, "Ana Erase"],
    );

    // A later submission of the erased person is not stored again.
    let before = w.items_with_sk_prefix("LeadsTable", "SUB#").await.len();
    let mut e = json_submission(&body(ana, "Ana Erase", "back again"));
    e["requestContext"]["requestId"] = json!("req-after-erasure");
    let resp = lead_intake::handle(&w.intake(None), request(&e)).await;
    assert!(resp.status().is_success());
    assert_eq!(
        w.items_with_sk_prefix("LeadsTable", "SUB#").await.len(),
        before
    );
    assert_all_declared(w).await;
}

/// An account with a login, a session, security events, and invoices of the tenant it owns.
async fn seed_account(w: &World, email: &str) -> (TenantId, String) {
    let t = TenantId::parse("acct-tenant").unwrap();
    let u = "usr_ana";
    let bidx = w.key.email(&Email::parse(email).unwrap());
    let d = &w.clients.dynamo;
    let put = |table: String, item: Vec<(&str, AttributeValue)>| {
        let mut req = d.put_item().table_name(table);
        for (k, v) in item {
            req = req.item(k, v);
        }
        req.send()
    };
    let st = |v: &str| AttributeValue::S(v.to_string());
    put(
        w.table("TenantsTable"),
        vec![
            ("pk", st(&format!("TENANT#{t}"))),
            ("sk", st("TENANT")),
            ("tenant_id", st(t.as_str())),
            ("status", st("active")),
            ("business_name", st("Ana Account SRL")),
            ("owner_user_id", st(u)),
        ],
    )
    .await
    .unwrap();
    put(
        w.table("TenantsTable"),
        vec![
            ("pk", st(&format!("TENANT#{t}"))),
            ("sk", st(&format!("USER#{u}"))),
            ("tenant_id", st(t.as_str())),
            ("user_id", st(u)),
            ("email", st(email)),
            ("name", st("Ana Account")),
            ("role", st("owner")),
            (
                "password_hash",
                st("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"),
            ),
            ("last_login_ip", st("198.51.100.7")),
        ],
    )
    .await
    .unwrap();
    put(
        w.table("TenantsTable"),
        vec![
            ("pk", st(&format!("LOGIN#{bidx}"))),
            ("sk", st("LOGIN")),
            ("tenant_id", st(t.as_str())),
            ("user_id", st(u)),
        ],
    )
    .await
    .unwrap();
    put(
        w.table("TenantsTable"),
        vec![
            ("pk", st("SESSION#ses_1")),
            ("sk", st("SESSION")),
            ("gsi1pk", st(&format!("USER#{u}"))),
            ("gsi1sk", st("SESSION#ses_1")),
            ("session_id", st("ses_1")),
            ("user_id", st(u)),
            ("tenant_id", st(t.as_str())),
            ("ip", st("198.51.100.7")),
            ("user_agent", st("AnaBrowser")),
        ],
    )
    .await
    .unwrap();
    for (sk, user) in [
        ("2026-11-01T10:00:00Z#ev1", u),
        ("2026-11-02T10:00:00Z#ev2", "usr_bob"),
    ] {
        put(
            w.table("SecurityLogTable"),
            vec![
                ("pk", st(&format!("TENANT#{t}#SECLOG"))),
                ("sk", st(sk)),
                ("event", st("login")),
                ("at", st(&sk[..20])),
                ("tenant_id", st(t.as_str())),
                ("user_id", st(user)),
            ],
        )
        .await
        .unwrap();
    }
    put(
        w.table("BillingTable"),
        vec![
            ("pk", st(&format!("TENANT#{t}"))),
            ("sk", st("INVOICE#in_1")),
            ("tenant_id", st(t.as_str())),
            ("invoice_id", st("in_1")),
            ("number", st("INV-1")),
            ("amount_due", AttributeValue::N("4900".into())),
            ("retain_until", st("2032-07-01")),
        ],
    )
    .await
    .unwrap();
    (t, u.to_string())
}

#[tokio::test]
async fn account_erasure_keeps_billing_restricted_and_names_it() {
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.account@example.com";
    let (t, _u) = seed_account(w, ana).await;
    let j = job(
        JobScope::Account,
        JobKind::Erasure {
            suppress_phone: false,
        },
        ana,
    );
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(out.counts["user"], 1);
    assert_eq!(out.counts["login_index"], 1);
    assert_eq!(out.counts["session"], 1);
    assert_eq!(out.counts["security_event"], 1);
    let billing = out
        .kept
        .iter()
        .find(|k| k.what.starts_with("billing"))
        .unwrap();
    assert!(out.kept.iter().any(|k| k.what.contains("workspace")));
    assert_eq!(billing.count, 1);
    assert_eq!(billing.retain_until.as_deref(), Some("2032-07-01"));
    assert!(billing.legal_basis.contains("17(3)(b)"));
    for (table, it) in everything(w).await {
        let text = item_text(&it);
        if table == Table::Billing {
            assert_eq!(it.get("restricted"), Some(&AttributeValue::Bool(true)));
            continue;
        }
        if it["sk"].as_s().unwrap() == "TENANT" {
            continue; // the owned workspace's record: kept and named (below)
        }
        assert!(
            !text.contains(ana) && !text.contains("198.51.100.7") && !text.contains("usr_ana\""),
            "{table:?} still holds the account: {text}"
        );
    }
    let seclog = w.scan("SecurityLogTable").await;
    assert_eq!(seclog.len(), 1, "another user's event stays");
    assert!(w
        .scan("TenantsTable")
        .await
        .iter()
        .any(|it| it["pk"].as_s().unwrap() == &format!("TENANT#{t}")));
    let urls = links(w, ana);
    assert!(urls
        .iter()
        .any(|u| object_of(w, u).starts_with("dsar/certificates/")));
    let mails = w.emails_to(ana);
    assert!(mails.last().unwrap().body.contains("17(3)(b)"));
    assert_all_declared(w).await;
}

#[tokio::test]
async fn account_access_lists_login_metadata_sessions_security_events_and_billing() {
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.acctaccess@example.com";
    seed_account(w, ana).await;
    let j = job(JobScope::Account, JobKind::Access, ana);
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(out.counts["security_event"], 1);
    assert_eq!(out.counts["invoice"], 1);
    let doc = download_json(w, &links(w, ana)[0]).await;
    let text = doc.to_string();
    assert!(text.contains("198.51.100.7") && text.contains("AnaBrowser") && text.contains("INV-1"));
    assert!(!text.contains("$argon2id$"), "secrets are withheld");
}

// ---------------------------------------------------------------- rectification, restriction, consent

#[tokio::test]
async fn rectification_corrects_the_lead_and_its_answers_with_an_audit_entry() {
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.rect@example.com";
    let lead = submit(w, "demo-contact", body(ana, "Ana Wrong", "hello")).await;
    let changes = BTreeMap::from([
        ("name".to_string(), "Ana Right".to_string()),
        ("email".to_string(), "ana.right@example.com".to_string()),
    ]);
    let j = job(
        tenant_scope(&w.tenant),
        JobKind::Rectification { changes },
        ana,
    );
    completed(f.worker.run(&j, &Unlimited).await.unwrap());
    let leads = w.items_with_sk_prefix("LeadsTable", "LEAD").await;
    let l = leads
        .iter()
        .find(|l| s(l, "lead_id") == Some(lead.as_str()))
        .unwrap();
    assert_eq!(s(l, "name"), Some("Ana Right"));
    assert_eq!(s(l, "email"), Some("ana.right@example.com"));
    let new_bidx = w.key.email(&Email::parse("ana.right@example.com").unwrap());
    assert_eq!(s(l, "email_bidx"), Some(new_bidx.as_str()));
    let subs = w.items_with_sk_prefix("LeadsTable", "SUB#").await;
    let fields = subs[0]["fields"].as_m().unwrap();
    assert_eq!(fields["name"].as_s().unwrap(), "Ana Right");
    let audit = w.items_with_sk_prefix("LeadsTable", "AUDIT#").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(s(&audit[0], "action"), Some("lead.rectified"));
    assert!(
        !audit[0].contains_key("actor_user_id"),
        "the platform acted"
    );
    // The answer goes to the verified address; a bad value is refused before anything changes.
    assert_eq!(w.emails_to(ana).len(), 1);
    let bad = BTreeMap::from([("email".to_string(), "not an email".to_string())]);
    let j2 = job(
        tenant_scope(&w.tenant),
        JobKind::Rectification { changes: bad },
        "ana.right@example.com",
    );
    assert!(matches!(
        f.worker.run(&j2, &Unlimited).await.unwrap(),
        RunResult::Failed(_)
    ));
    assert!(f
        .progress
        .events()
        .iter()
        .any(|e| e.starts_with(&format!("failed {}", j2.request_id))));
    assert_eq!(
        w.items_with_sk_prefix("LeadsTable", "AUDIT#").await.len(),
        1
    );
    assert_all_declared(w).await;
}

/// One request is several jobs: a restriction and, later, its lift; a part for each tenant
/// holding the subject. Each job has its own checkpoint, so one completed never makes another
/// of the same request a no-op (a lift that did nothing, a second tenant never served).
#[tokio::test]
async fn a_restriction_and_its_lift_and_each_tenants_part_are_jobs_of_their_own() {
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.lift.same@example.com";
    let lead = submit(w, "demo-contact", body(ana, "Ana L", "hello")).await;
    let r = job(tenant_scope(&w.tenant), JobKind::Restriction, ana);
    completed(f.worker.run(&r, &Unlimited).await.unwrap());
    assert!(restricted(w, &lead).await);
    let lift = DsarJob {
        kind: JobKind::LiftRestriction,
        ..r.clone()
    };
    completed(f.worker.run(&lift, &Unlimited).await.unwrap());
    assert!(
        !restricted(w, &lead).await,
        "the lift of the same request ran"
    );
    assert_eq!(
        f.worker.run(&lift, &Unlimited).await.unwrap(),
        RunResult::AlreadyCompleted,
        "a duplicate of the lift is still a no-op"
    );
    // The same request's part for another tenant runs too.
    let other = DsarJob {
        scope: tenant_scope(&TenantId::parse("another-tenant").unwrap()),
        ..r.clone()
    };
    assert!(matches!(
        f.worker.run(&other, &Unlimited).await.unwrap(),
        RunResult::Completed(_)
    ));
}

/// A lead can be held restricted by a restriction request and by an objection to
/// legitimate-interest processing awaiting the tenant: lifting the restriction request leaves
/// it restricted while the objection holds it.
#[tokio::test]
async fn a_restriction_lift_leaves_a_lead_an_objection_still_holds() {
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.two.holds@example.com";
    let lead = submit(w, "demo-contact", body(ana, "Ana H", "hello")).await;
    let r = job(tenant_scope(&w.tenant), JobKind::Restriction, ana);
    completed(f.worker.run(&r, &Unlimited).await.unwrap());
    // The objection's hold, as the dsar function writes it at verification.
    let it = w
        .items_with_sk_prefix("LeadsTable", "LEAD")
        .await
        .into_iter()
        .find(|l| s(l, "lead_id") == Some(lead.as_str()))
        .unwrap();
    w.clients
        .dynamo
        .update_item()
        .table_name(w.table("LeadsTable"))
        .key("pk", it["pk"].clone())
        .key("sk", it["sk"].clone())
        .update_expression("ADD restricted_for :ids")
        .expression_attribute_values(":ids", AttributeValue::Ss(vec!["dsr-objection".into()]))
        .send()
        .await
        .unwrap();
    let lift = DsarJob {
        kind: JobKind::LiftRestriction,
        ..r.clone()
    };
    completed(f.worker.run(&lift, &Unlimited).await.unwrap());
    assert!(
        restricted(w, &lead).await,
        "the objection awaiting the tenant still holds it"
    );
    assert_all_declared(w).await;
}

async fn restricted(w: &World, lead: &str) -> bool {
    let leads = w.items_with_sk_prefix("LeadsTable", "LEAD").await;
    let l = leads
        .iter()
        .find(|l| s(l, "lead_id") == Some(lead))
        .unwrap();
    l.get("restricted") == Some(&AttributeValue::Bool(true))
}

#[tokio::test]
async fn restriction_flags_the_lead_read_only_and_lifting_clears_it() {
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.restrict@example.com";
    let lead = submit(w, "demo-contact", body(ana, "Ana R", "hello")).await;
    completed(
        f.worker
            .run(
                &job(tenant_scope(&w.tenant), JobKind::Restriction, ana),
                &Unlimited,
            )
            .await
            .unwrap(),
    );
    assert!(restricted(w, &lead).await);
    completed(
        f.worker
            .run(
                &job(tenant_scope(&w.tenant), JobKind::LiftRestriction, ana),
                &Unlimited,
            )
            .await
            .unwrap(),
    );
    assert!(!restricted(w, &lead).await);
    let actions: Vec<String> = w
        .items_with_sk_prefix("LeadsTable", "AUDIT#")
        .await
        .iter()
        .filter_map(|a| s(a, "action").map(str::to_string))
        .collect();
    assert!(actions.contains(&"lead.restricted".to_string()));
    assert!(actions.contains(&"lead.unrestricted".to_string()));
}

#[tokio::test]
async fn withdrawal_and_objection_keep_the_consent_record_and_stop_marketing() {
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.consent@example.com";
    submit(w, "demo-contact", body(ana, "Ana C", "hello")).await;
    let j = job(tenant_scope(&w.tenant), JobKind::ConsentWithdrawal, ana);
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(out.counts["consent_record"], 1);
    let sub = &w.items_with_sk_prefix("LeadsTable", "SUB#").await[0];
    let c = sub["consents"].as_l().unwrap()[0].as_m().unwrap();
    assert_eq!(
        c["granted"],
        AttributeValue::Bool(true),
        "what was given is kept"
    );
    assert!(c["withdrawn_at"].as_s().is_ok());
    assert!(c["withdrawal_source"]
        .as_s()
        .unwrap()
        .contains(&j.request_id));
    let lead = &w.items_with_sk_prefix("LeadsTable", "LEAD").await[0];
    assert_eq!(
        lead.get("marketing_opt_out"),
        Some(&AttributeValue::Bool(true))
    );
    // An objection afterwards changes no consent again (already withdrawn) and is recorded.
    let o = job(
        tenant_scope(&w.tenant),
        JobKind::Objection {
            marketing_only: false,
        },
        ana,
    );
    let out = completed(f.worker.run(&o, &Unlimited).await.unwrap());
    assert!(!out.counts.contains_key("consent_record"));
    let lead = &w.items_with_sk_prefix("LeadsTable", "LEAD").await[0];
    assert!(lead.get("objection_at").is_some());
    assert_all_declared(w).await;
}

/// An account user's objection or withdrawal changes what the platform records of them: the
/// user item is opted out of marketing with its time and source (as the one-click link does),
/// and an objection to legitimate-interest processing gets its time.
#[tokio::test]
async fn an_account_objection_or_withdrawal_is_recorded_on_the_user() {
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.account.objects@example.com";
    let (t, u) = seed_account(w, ana).await;
    let user_of = || async {
        w.items_with_sk_prefix("TenantsTable", "USER#")
            .await
            .into_iter()
            .find(|it| {
                s(it, "user_id") == Some(u.as_str()) && s(it, "tenant_id") == Some(t.as_str())
            })
            .expect("the user")
    };
    let j = job(
        JobScope::Account,
        JobKind::Objection {
            marketing_only: false,
        },
        ana,
    );
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(out.counts["user_opted_out"], 1);
    let it = user_of().await;
    assert_eq!(
        it.get("marketing_opt_out"),
        Some(&AttributeValue::Bool(true))
    );
    assert!(s(&it, "marketing_opt_out_source")
        .unwrap()
        .contains(&j.request_id));
    let first = s(&it, "objection_at").expect("recorded").to_string();
    // A withdrawal afterwards keeps the first time and source.
    let wd = job(JobScope::Account, JobKind::ConsentWithdrawal, ana);
    completed(f.worker.run(&wd, &Unlimited).await.unwrap());
    let it = user_of().await;
    assert_eq!(s(&it, "objection_at"), Some(first.as_str()));
    assert!(s(&it, "marketing_opt_out_source")
        .unwrap()
        .contains(&j.request_id));
    assert_all_declared(w).await;
}

// ---------------------------------------------------------------- resumption, duplicates, failures

#[tokio::test]
async fn an_interrupted_run_resumes_from_its_checkpoint_without_double_counting() {
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.resume@example.com";
    seed_account(w, ana).await;
    // Account erasure: the user target, then the billing target. One step, then time is up.
    let j = job(
        JobScope::Account,
        JobKind::Erasure {
            suppress_phone: false,
        },
        ana,
    );
    assert_eq!(
        f.worker.run(&j, &Steps::new(1)).await.unwrap(),
        RunResult::Continued
    );
    let dispatched = f.dispatcher.0.lock().unwrap().clone();
    assert_eq!(
        dispatched,
        vec![j.clone()],
        "the continuation is dispatched"
    );
    assert!(w.emails_to(ana).is_empty(), "nothing delivered yet");
    // The continuation (the dispatched payload) finishes.
    let out = completed(f.worker.run(&dispatched[0], &Unlimited).await.unwrap());
    assert_eq!(out.counts["user"], 1);
    assert_eq!(out.counts["session"], 1);
    assert_eq!(out.counts["billing_record_restricted"], 1);
    assert_eq!(
        out.kept.len(),
        2,
        "billing and the owned workspace, once each"
    );
    assert_eq!(w.emails_to(ana).len(), 1);

    // An access export interrupted before its document was sent resumes into a valid document.
    let bob = "bob.resume@example.com";
    submit(w, "demo-contact", body(bob, "Bob R", "one")).await;
    let a = job(tenant_scope(&w.tenant), JobKind::Access, bob);
    assert_eq!(
        f.worker.run(&a, &Steps::new(1)).await.unwrap(),
        RunResult::Continued
    );
    let out = completed(f.worker.run(&a, &Unlimited).await.unwrap());
    assert_eq!(out.counts["lead"], 1, "not counted twice");
    let doc = download_json(w, &links(w, bob)[0]).await;
    assert_eq!(
        doc["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "lead")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_duplicate_invocation_of_a_completed_job_is_a_no_op() {
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.dup@example.com";
    submit(w, "demo-contact", body(ana, "Ana D", "hello")).await;
    let j = job(
        tenant_scope(&w.tenant),
        JobKind::Erasure {
            suppress_phone: false,
        },
        ana,
    );
    let first = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(
        f.worker.run(&j, &Unlimited).await.unwrap(),
        RunResult::AlreadyCompleted
    );
    assert_eq!(w.emails_to(ana).len(), 1);
    let completions: Vec<String> = f
        .progress
        .events()
        .into_iter()
        .filter(|e| e.starts_with("completed"))
        .collect();
    assert_eq!(completions.len(), 1);
    assert!(completions[0].contains(&serde_json::to_string(&first.counts).unwrap()));
}

#[tokio::test]
async fn an_undeclared_attribute_fails_the_job_loudly_before_anything_is_disclosed() {
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.undeclared@example.com";
    let lead = submit(w, "demo-contact", body(ana, "Ana U", "hello")).await;
    w.clients
        .dynamo
        .update_item()
        .table_name(w.table("LeadsTable"))
        .key(
            "pk",
            AttributeValue::S(format!("TENANT#{}#LEAD#{lead}", w.tenant)),
        )
        .key("sk", AttributeValue::S("LEAD".into()))
        .update_expression("SET shoe_size = :v")
        .expression_attribute_values(":v", AttributeValue::S("44".into()))
        .send()
        .await
        .unwrap();
    let (logs, guard) = capture_logs();
    let j = job(tenant_scope(&w.tenant), JobKind::Access, ana);
    let r = f.worker.run(&j, &Unlimited).await.unwrap();
    drop(guard);
    let RunResult::Failed(reason) = r else {
        panic!("expected failure, got {r:?}")
    };
    assert!(reason.contains("shoe_size"));
    assert!(w.emails_to(ana).is_empty());
    assert_logs_hold_without(&logs, &["job failed", "shoe_size"], &[ana]);
    // "Approve again" re-dispatches the job: it resumes, and fails the same way until the
    // inventory declares the attribute; still nothing is sent.
    assert!(matches!(
        f.worker.run(&j, &Unlimited).await.unwrap(),
        RunResult::Failed(_)
    ));
    assert!(w.emails_to(ana).is_empty());
}

/// A job whose invocation fails every retry rests in the failure queue (14 days): its payload
/// names the request and carries neither the subject's email nor a correction value; the
/// worker reads them from the request record. A request closed before its job ran is not
/// carried out (a restriction's lift excepted: the subject was told before).
#[tokio::test]
async fn the_invocation_payload_carries_ids_only_and_the_worker_reads_the_subject_from_the_request()
{
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.payload@example.com";
    submit(w, "demo-contact", body(ana, "Ana Wrong", "hello")).await;
    let changes = BTreeMap::from([
        ("name".to_string(), "Ana Corrected".to_string()),
        ("company".to_string(), "Secretive Holdings".to_string()),
    ]);
    let j = job(
        tenant_scope(&w.tenant),
        JobKind::Rectification {
            changes: changes.clone(),
        },
        ana,
    );
    let payload = serde_json::to_value(&j).unwrap();
    let raw = payload.to_string();
    for secret in [ana, "Ana Corrected", "Secretive Holdings"] {
        assert!(!raw.contains(secret), "{secret} in the payload: {raw}");
    }
    assert!(raw.contains(&j.request_id));
    let bidx = w.key.email(&Email::parse(ana).unwrap());
    f.progress.1.lock().unwrap().insert(
        j.request_id.clone(),
        JobSubject {
            email: Some(ana.to_string()),
            email_bidx: bidx.clone(),
            phone_bidx: None,
            corrections: changes,
        },
    );
    let out = dsar_worker::handle(&f.worker, payload, &Unlimited)
        .await
        .unwrap();
    assert_eq!(out["status"], "completed", "{out}");
    let lead = &w.items_with_sk_prefix("LeadsTable", "LEAD").await[0];
    assert_eq!(s(lead, "name"), Some("Ana Corrected"));
    assert_eq!(s(lead, "company"), Some("Secretive Holdings"));
    assert!(w
        .emails_to(ana)
        .iter()
        .any(|m| m.subject.contains("rectification completed")));

    // Closed before the job ran (its email gone): nothing is done, the job is reported failed.
    let late = job(tenant_scope(&w.tenant), JobKind::Restriction, ana);
    f.progress.1.lock().unwrap().insert(
        late.request_id.clone(),
        JobSubject {
            email: None,
            email_bidx: bidx.clone(),
            phone_bidx: None,
            corrections: BTreeMap::new(),
        },
    );
    let out = dsar_worker::handle(&f.worker, serde_json::to_value(&late).unwrap(), &Unlimited)
        .await
        .unwrap();
    assert_eq!(out["status"], "failed", "{out}");
    let lead = &w.items_with_sk_prefix("LeadsTable", "LEAD").await[0];
    assert!(!lead.contains_key("restricted"));
    // A lift runs on the blind index alone.
    let lift = job(tenant_scope(&w.tenant), JobKind::LiftRestriction, ana);
    f.progress.1.lock().unwrap().insert(
        lift.request_id.clone(),
        JobSubject {
            email: None,
            email_bidx: bidx,
            phone_bidx: None,
            corrections: BTreeMap::new(),
        },
    );
    let sent = w.emails_to(ana).len();
    let out = dsar_worker::handle(&f.worker, serde_json::to_value(&lift).unwrap(), &Unlimited)
        .await
        .unwrap();
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(
        w.emails_to(ana).len(),
        sent,
        "told before, by the lifecycle"
    );
}

#[tokio::test]
async fn the_handler_answers_a_malformed_payload_without_retrying_or_logging_it() {
    let f = fx().await;
    let (logs, guard) = capture_logs();
    let out = dsar_worker::handle(
        &f.worker,
        json!({"request_id": "x", "subject_email": "leak@example.com", "kind": {"type": "nope"}}),
        &Unlimited,
    )
    .await
    .unwrap();
    drop(guard);
    assert_eq!(out["status"], "rejected");
    assert_logs_hold_without(
        &logs,
        &["invalid job payload"],
        &["leak@example.com", "leak"],
    );
}

/// How many submissions the leads table holds.
async fn submissions(w: &World) -> usize {
    w.items_with_sk_prefix("LeadsTable", "SUB#").await.len()
}

/// A submission through lead intake that must succeed (stored or silently suppressed).
async fn submit_quietly(w: &World, body: Value, request_id: &str) {
    let mut e = json_submission(&body);
    e["requestContext"]["requestId"] = json!(request_id);
    let resp = lead_intake::handle(&w.intake(None), request(&e)).await;
    assert!(resp.status().is_success(), "{:?}", response_json(&resp));
}

/// The attack: Mallory submits a form with Victor's phone number and her own email, then erases
/// her email. Only what she proved (her email) is suppressed: Victor's later submissions with
/// his phone are stored. The phone is suppressed too only when the controller chooses so in
/// the approval.
#[tokio::test]
async fn erasure_suppresses_only_the_proven_email_unless_the_controller_adds_the_phone() {
    let f = fx().await;
    let w = &f.w;
    let victims_phone = "+40722000111";
    let mut planted = body("mallory@example.com", "Mallory", "hi");
    planted["phone"] = json!(victims_phone);
    submit(w, "demo-contact", planted).await;
    let j = job(
        tenant_scope(&w.tenant),
        JobKind::Erasure {
            suppress_phone: false,
        },
        "mallory@example.com",
    );
    completed(f.worker.run(&j, &Unlimited).await.unwrap());

    let before = submissions(w).await;
    let mut victor = body("victor@example.com", "Victor", "my own enquiry");
    victor["phone"] = json!(victims_phone);
    submit_quietly(w, victor.clone(), "req-victor-1").await;
    assert_eq!(
        submissions(w).await,
        before + 1,
        "Victor's submission with his own phone is stored"
    );
    submit_quietly(
        w,
        body("mallory@example.com", "Mallory", "back"),
        "req-mallory-2",
    )
    .await;
    assert_eq!(
        submissions(w).await,
        before + 1,
        "Mallory's email stays suppressed"
    );
    let phone_bidx = w
        .key
        .phone(&shared_core::domain::Phone::parse(victims_phone).unwrap());
    let entries = w.scan("PrivacyTable").await;
    assert!(
        !entries
            .iter()
            .any(|it| s(it, "sk") == Some(phone_bidx.as_str())),
        "no suppression entry for an unproven phone"
    );

    // The controller may choose to suppress the lead's phone as well.
    let mut erin = body("erin@example.com", "Erin", "hello");
    erin["phone"] = json!("+40722000222");
    submit(w, "demo-contact", erin).await;
    let j = job(
        tenant_scope(&w.tenant),
        JobKind::Erasure {
            suppress_phone: true,
        },
        "erin@example.com",
    );
    completed(f.worker.run(&j, &Unlimited).await.unwrap());
    let before = submissions(w).await;
    let mut other = body("someone.else@example.com", "Someone", "x");
    other["phone"] = json!("+40722000222");
    submit_quietly(w, other, "req-erin-phone").await;
    assert_eq!(
        submissions(w).await,
        before,
        "the chosen phone is suppressed"
    );
}

/// A lead under legal hold is kept whole by an erasure: the lead and everything under it (its
/// submissions, notes, files), named in the outcome as held.
#[tokio::test]
async fn erasure_keeps_a_held_lead_whole() {
    use shared_core::clock::Clock;
    use shared_core::domain::LeadId;
    use shared_privacy::legal_holds::{set_legal_hold, HeldItem, HoldKind};
    let f = fx().await;
    let w = &f.w;
    let who = "held.subject@example.com";
    let lead = submit(w, "demo-contact", body(who, "Held Subject", "one")).await;
    submit(w, "demo-contact", body(who, "Held Subject", "two")).await;
    let t = w.tenant.as_str();
    let att_key = format!("tenants/{t}/leads/{lead}/att_h");
    put_object(w, &f.attachments_bucket, &att_key, "evidence").await;
    let held = HeldItem {
        kind: HoldKind::Lead,
        key: shared_core::keys::lead(&w.tenant, &LeadId::parse(&lead).unwrap()),
    };
    assert!(set_legal_hold(
        &w.clients.dynamo,
        &w.table("LeadsTable"),
        &w.table("OpsTable"),
        &held,
        true,
        w.clock.now()
    )
    .await
    .unwrap());
    let pk = format!("TENANT#{t}#LEAD#{lead}");
    let under = |items: Vec<Item>| {
        items
            .iter()
            .filter(|it| s(it, "pk") == Some(pk.as_str()))
            .count()
    };
    let before = under(w.scan("LeadsTable").await);
    assert_eq!(before, 3, "the lead and two submissions");

    let j = job(
        tenant_scope(&w.tenant),
        JobKind::Erasure {
            suppress_phone: false,
        },
        who,
    );
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(
        under(w.scan("LeadsTable").await),
        before,
        "nothing of a held lead is erased"
    );
    assert!(object_keys(w, &f.attachments_bucket)
        .await
        .contains(&att_key));
    assert_eq!(out.counts.get("submission"), None, "{:?}", out.counts);
    assert!(
        out.kept.iter().any(|k| k.what.contains("legal hold")),
        "the outcome names the hold: {:?}",
        out.kept
    );
}

/// A withdrawal is visible wherever the team sees the person, with no action of the team: the
/// lead list row says `marketing_opt_out`, the lead's submissions and consent history say when
/// and how each consent was withdrawn (what was given stays as proof).
#[tokio::test]
async fn a_withdrawal_shows_in_the_lead_list_and_detail_with_no_tenant_action() {
    use shared_leads::dynamo::{LeadsStore, LeadsTables};
    use shared_leads::LeadFilter;
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.visible@example.com";
    let lead = submit(w, "demo-contact", body(ana, "Ana V", "hello")).await;
    submit(
        w,
        "demo-contact",
        body("bob.visible@example.com", "Bob V", "hi"),
    )
    .await;
    let j = job(tenant_scope(&w.tenant), JobKind::ConsentWithdrawal, ana);
    completed(f.worker.run(&j, &Unlimited).await.unwrap());

    let store = LeadsStore::new(
        w.clients.dynamo.clone(),
        LeadsTables {
            tenants: w.table("TenantsTable"),
            leads: w.table("LeadsTable"),
        },
    );
    let page = store
        .list_leads(&w.tenant, &LeadFilter::default(), 50, None)
        .await
        .unwrap();
    let rows: Vec<Value> = page
        .items
        .iter()
        .map(|l| serde_json::to_value(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let expected = row["id"] == json!(lead);
        assert_eq!(row["marketing_opt_out"], json!(expected), "{row}");
    }
    let detail = store
        .lead_detail(
            &w.tenant,
            &shared_core::domain::LeadId::parse(&lead).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let detail = serde_json::to_value(&detail).unwrap();
    assert_eq!(detail["marketing_opt_out"], json!(true));
    let consent = &detail["submissions"][0]["consents"][0];
    assert_eq!(consent["granted"], json!(true), "what was given stays");
    assert!(consent["withdrawn_at"].is_string(), "{consent}");
    assert!(consent["withdrawal_source"]
        .as_str()
        .unwrap()
        .contains(&j.request_id));
    assert!(detail["consent_history"][0]["withdrawn_at"].is_string());
}

/// The links a subject is emailed work for the 72 hours they promise, through the platform's
/// route (never a presigned URL that dies with its signer's credentials), and only for their own
/// object: a tampered link, another subject's object, and an expired link are refused.
#[tokio::test]
async fn emailed_links_go_through_the_download_route_expire_and_cannot_be_moved() {
    use dsar::downloads::resolve;
    use shared_core::clock::Clock;
    use shared_privacy::dsar::tokens::{DownloadBucket, DownloadToken};
    let f = fx().await;
    let w = &f.w;
    let (ana, bob) = ("ana.link@example.com", "bob.link@example.com");
    submit(w, "demo-contact", body(ana, "Ana L", "a")).await;
    submit(w, "demo-contact", body(bob, "Bob L", "b")).await;
    let ja = job(tenant_scope(&w.tenant), JobKind::Access, ana);
    let jb = job(tenant_scope(&w.tenant), JobKind::Access, bob);
    let out_a = completed(f.worker.run(&ja, &Unlimited).await.unwrap());
    let out_b = completed(f.worker.run(&jb, &Unlimited).await.unwrap());
    let url = links(w, ana)[0].clone();
    assert!(
        !url.contains("X-Amz-"),
        "no presigned URL in the email: {url}"
    );
    let d = downloads(w);
    let issued = w.clock.now();
    let raw = token_of(&url);
    let t = DownloadToken::verify(&w.key, &raw, issued.unix_timestamp()).unwrap();
    assert_eq!(t.key, out_a.export_keys[0]);
    assert_eq!(t.request_id, ja.request_id);
    assert_eq!(t.bucket, DownloadBucket::Exports);
    assert_eq!(
        t.expires_at,
        (issued + time::Duration::hours(72)).unix_timestamp()
    );

    // Works on the last second of its 72 hours (long after any role session), not after.
    let last = issued + time::Duration::hours(72) - time::Duration::seconds(1);
    assert!(resolve(&d, &w.key, &raw, last).await.is_ok());
    let expired = resolve(&d, &w.key, &raw, issued + time::Duration::hours(72))
        .await
        .unwrap_err();
    assert_eq!((expired.status(), expired.code()), (410, "link_expired"));

    // Ana's signature on Bob's object, or any byte changed: refused.
    let (payload, sig) = raw.split_once('.').unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let moved = String::from_utf8(b64.decode(payload).unwrap())
        .unwrap()
        .replace(&out_a.export_keys[0], &out_b.export_keys[0]);
    let mut flipped = sig.to_string();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    for forged in [
        format!("{}.{sig}", b64.encode(moved)),
        format!("{payload}.{flipped}"),
        "garbage".to_string(),
    ] {
        let e = resolve(&d, &w.key, &forged, issued).await.unwrap_err();
        assert_eq!((e.status(), e.code()), (400, "invalid_token"), "{forged}");
    }
    // Bob's own link opens Bob's export, which does not name Ana.
    let (status, body) = download(w, &links(w, bob)[0]).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains(bob) && !text.contains(ana));
}

/// An upload signed before its lead was erased and sent after (a presigned PUT stays valid for
/// 5 minutes): attachment-guard, notified by S3, deletes it when it lands.
#[tokio::test]
async fn an_upload_that_lands_after_its_lead_was_erased_is_deleted_on_arrival() {
    let f = fx().await;
    let w = &f.w;
    let ana = "ana.late@example.com";
    let lead = submit(w, "demo-contact", body(ana, "Ana Late", "please erase")).await;
    let bob = submit(
        w,
        "demo-contact",
        body("bob.stays@example.com", "Bob", "stay"),
    )
    .await;
    let t = w.tenant.as_str();
    // The records lead-transfers writes when it signs an upload; Bob's file is sent at once,
    // Ana's is not sent yet.
    let ana_key = format!("tenants/{t}/leads/{lead}/at-late");
    let bob_key = format!("tenants/{t}/leads/{bob}/at-bob");
    for (lead, id, key) in [(&lead, "at-late", &ana_key), (&bob, "at-bob", &bob_key)] {
        w.clients
            .dynamo
            .put_item()
            .table_name(w.table("LeadsTable"))
            .item("pk", AttributeValue::S(format!("TENANT#{t}#LEAD#{lead}")))
            .item("sk", AttributeValue::S(format!("ATT#{id}")))
            .item("tenant_id", AttributeValue::S(t.into()))
            .item("lead_id", AttributeValue::S(lead.to_string()))
            .item("attachment_id", AttributeValue::S(id.into()))
            .item("filename", AttributeValue::S("contract.pdf".into()))
            .item("object_key", AttributeValue::S(key.to_string()))
            .send()
            .await
            .unwrap();
    }
    put_object(w, &f.attachments_bucket, &bob_key, "Bob's contract").await;

    let j = job(
        tenant_scope(&w.tenant),
        JobKind::Erasure {
            suppress_phone: false,
        },
        ana,
    );
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(out.counts["attachment_record"], 1);

    // Ana's file lands after the erasure certified that nothing of her is left.
    put_object(w, &f.attachments_bucket, &ana_key, "contract of Ana Late").await;
    let guard = w.attachment_guard();
    let report = attachment_guard::handle(
        &guard,
        &w.object_created_event(&f.attachments_bucket, &ana_key),
    )
    .await
    .unwrap();
    assert_eq!((report.kept, report.deleted), (0, 1));
    let report = attachment_guard::handle(
        &guard,
        &w.object_created_event(&f.attachments_bucket, &bob_key),
    )
    .await
    .unwrap();
    assert_eq!((report.kept, report.deleted), (1, 0));
    assert_eq!(object_keys(w, &f.attachments_bucket).await, [bob_key]);
}

/// Edits the lead's email the way `PATCH /v1/leads/{id}` does (the route moves in the edit's
/// transaction; `leads-api` computes the move with `RouteMove::between` exactly like this).
async fn change_lead_email(w: &World, lead: &str, from: &str, to: &str) {
    use shared_core::clock::Clock;
    use shared_core::domain::{Email, LeadId};
    use shared_leads::dynamo::{LeadsStore, LeadsTables};
    use shared_leads::{AuditEntry, LeadEdit, RouteMove};
    let store = LeadsStore::new(
        w.clients.dynamo.clone(),
        LeadsTables {
            tenants: w.table("TenantsTable"),
            leads: w.table("LeadsTable"),
        },
    );
    let id = LeadId::parse(lead).unwrap();
    let current = store.lead(&w.tenant, &id).await.unwrap().unwrap();
    let to_email = Email::parse(to).unwrap();
    let (before, after) = (
        w.key.email(&Email::parse(from).unwrap()),
        w.key.email(&to_email),
    );
    let now = w.clock.now();
    let edit = LeadEdit {
        tenant: w.tenant.clone(),
        lead: id,
        expected_version: current.version,
        name: None,
        company: None,
        email: Some(Some((to_email, after.clone()))),
        phone: None,
        owner: None,
        stage: None,
        audit: AuditEntry {
            entry_id: ulid::Ulid::new().to_string().to_lowercase(),
            action: "lead.updated".into(),
            fields: vec!["email".into()],
            actor_user_id: None,
            api_key_id: None,
            at: shared_core::clock::rfc3339(now),
        },
        at: now,
        route_move: RouteMove::between((Some(&before), None), (Some(&after), None), |b| {
            w.key.lead_id(&w.tenant, b)
        }),
    };
    store.edit_lead(&edit).await.expect("email edit");
}

async fn access_records(f: &Fx, email: &str) -> Vec<Value> {
    let j = job(tenant_scope(&f.w.tenant), JobKind::Access, email);
    completed(f.worker.run(&j, &Unlimited).await.unwrap());
    let urls = links(&f.w, email);
    let doc = download_json(&f.w, urls.last().expect("an export link")).await;
    doc["records"].as_array().unwrap().clone()
}

fn messages(records: &[Value]) -> Vec<String> {
    let mut m: Vec<String> = records
        .iter()
        .filter(|r| r["kind"] == "submission")
        .map(|r| {
            r["categories"]["crm_content"]["fields"]["value"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    m.sort();
    m
}

/// Issue 12, "one person's data never reaches another": a lead's email is changed from Ana's to
/// Bea's. Bea's submissions then go to that lead, Ana's next one to a lead of her own; each
/// subject's access export holds exactly their own submissions (and the lead record only for
/// the subject whose email it has now); each erasure removes exactly its subject's data.
#[tokio::test]
async fn after_an_email_edit_each_subject_gets_and_erases_exactly_their_own_data() {
    let f = fx().await;
    let w = &f.w;
    let (ana, bea) = ("ana.moved@example.com", "bea.moved@example.com");
    let lead = submit(
        w,
        "demo-contact",
        body(ana, "Ana Moved", "ana before the edit"),
    )
    .await;
    change_lead_email(w, &lead, ana, bea).await;

    let beas = submit(
        w,
        "demo-contact",
        body(bea, "Bea Moved", "bea after the edit"),
    )
    .await;
    assert_eq!(
        beas, lead,
        "Bea's submission goes to the lead that now has her email"
    );
    let anas = submit(
        w,
        "demo-contact",
        body(ana, "Ana Moved", "ana after the edit"),
    )
    .await;
    assert_ne!(
        anas, lead,
        "Ana's later submission must not land in the lead that says Bea"
    );

    // Access: each subject's own submissions, wherever they are; the edited lead's record is
    // Bea's (its email is hers), Ana's new lead's record is Ana's.
    let for_ana = access_records(&f, ana).await;
    assert_eq!(
        messages(&for_ana),
        ["ana after the edit", "ana before the edit"],
        "{for_ana:#?}"
    );
    let ana_leads: Vec<&Value> = for_ana.iter().filter(|r| r["kind"] == "lead").collect();
    assert_eq!(ana_leads.len(), 1);
    assert_eq!(ana_leads[0]["record"]["lead_id"], json!(anas));
    let text = serde_json::to_string(&for_ana).unwrap();
    assert!(
        !text.contains(bea) && !text.contains("bea after"),
        "Bea's data reached Ana"
    );

    let for_bea = access_records(&f, bea).await;
    assert_eq!(messages(&for_bea), ["bea after the edit"], "{for_bea:#?}");
    let text = serde_json::to_string(&for_bea).unwrap();
    assert!(
        !text.contains("ana before") && !text.contains("ana after"),
        "Ana's data reached Bea"
    );
    assert!(for_bea
        .iter()
        .any(|r| r["kind"] == "lead" && r["record"]["lead_id"] == json!(lead)));

    // Erasure of Bea first: her submission and the lead's contact go; Ana's submission on that
    // lead stays (it is Ana's), under a lead without Bea's contact details.
    let erase = |email: &str| {
        job(
            tenant_scope(&w.tenant),
            JobKind::Erasure {
                suppress_phone: false,
            },
            email,
        )
    };
    completed(f.worker.run(&erase(bea), &Unlimited).await.unwrap());
    let text = everything(w)
        .await
        .iter()
        .map(|(_, it)| item_text(it))
        .collect::<String>();
    assert!(
        !text.contains(bea) && !text.contains("bea after"),
        "Bea's data survived her erasure"
    );
    assert!(
        text.contains("ana before the edit"),
        "Bea's erasure removed Ana's submission"
    );
    assert!(text.contains("ana after the edit"));

    // Ana's access still finds both of hers; then her erasure removes them, and the emptied lead.
    assert_eq!(
        messages(&access_records(&f, ana).await),
        ["ana after the edit", "ana before the edit"]
    );
    completed(f.worker.run(&erase(ana), &Unlimited).await.unwrap());
    let left: Vec<Item> = w
        .scan("LeadsTable")
        .await
        .into_iter()
        .filter(|it| {
            let pk = s(it, "pk").unwrap_or_default();
            pk.contains(&lead) || pk.contains(&anas) || pk.contains("#ROUTE#")
        })
        .collect();
    assert!(left.is_empty(), "left after both erasures: {left:#?}");
    assert_all_declared(w).await;
}

/// A phone-only form of `tenant` (the demo form with its email optional): its submissions
/// make leads known by phone alone.
async fn phone_only_form(w: &World, tenant: &TenantId, form: &str) {
    let mut f = infra::seed::demo_form(tenant, &FormId::parse(form).unwrap(), WEB_ORIGIN);
    for field in &mut f.fields {
        if field.name == "email" {
            field.required = false;
        }
    }
    w.put_tenant(tenant, TenantStatus::Active, &f)
        .await
        .unwrap();
}

fn phone_body(phone: &str, name: &str, message: &str) -> Value {
    json!({"phone": phone, "name": name, "message": message, "consent_marketing": true})
}

/// A job for a request the tenant filed by phone: the record names the phone's blind index;
/// the answers go to the filing user's address.
fn phone_job(f: &Fx, tenant: &TenantId, kind: JobKind, phone: &str, staff: &str) -> DsarJob {
    let j = job(tenant_scope(tenant), kind, "");
    f.progress.1.lock().unwrap().insert(
        j.request_id.clone(),
        JobSubject {
            email: Some(staff.to_string()),
            email_bidx: f.w.key.email(&Email::parse(staff).unwrap()),
            phone_bidx: Some(
                f.w.key
                    .phone(&shared_core::domain::Phone::parse(phone).unwrap()),
            ),
            corrections: BTreeMap::new(),
        },
    );
    j
}

/// Issue 12, "the person can be found however they reached the tenant": a lead collected by a
/// phone-only form is found, exported and erased by its phone's blind index, in the filing
/// tenant only; another tenant's lead of the same phone and a lead of another phone are
/// untouched; the phone the tenant attested is suppressed.
#[tokio::test]
async fn a_phone_only_lead_is_found_exported_and_erased_by_phone_in_its_tenant_only() {
    let f = fx().await;
    let w = &f.w;
    let staff = "staff@tenant-a.example";
    let pat = "+40722000333";
    phone_only_form(w, &w.tenant, "form-phone-a").await;
    let b = TenantId::parse("tenant-b").unwrap();
    phone_only_form(w, &b, "form-phone-b").await;
    let lead_a = submit(w, "form-phone-a", phone_body(pat, "Pat", "pat to a")).await;
    let lead_b = submit(w, "form-phone-b", phone_body(pat, "Pat", "pat to b")).await;
    let other = submit(
        w,
        "form-phone-a",
        phone_body("+40722000444", "Quinn", "quinn to a"),
    )
    .await;
    assert_ne!(lead_a, other);

    // Access: exactly Pat's submission in tenant-a, delivered to the filing user.
    let j = phone_job(&f, &w.tenant, JobKind::Access, pat, staff);
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(out.counts.get("submission"), Some(&1), "{:?}", out.counts);
    let urls = links(w, staff);
    let doc = download_json(w, urls.last().expect("an export link")).await;
    let records = doc["records"].as_array().unwrap().clone();
    assert_eq!(messages(&records), vec!["pat to a".to_string()]);
    assert!(
        records.iter().any(|r| r["kind"] == "lead"),
        "the lead is Pat's"
    );
    let text = doc.to_string();
    assert!(
        !text.contains("quinn") && !text.contains("pat to b"),
        "{text}"
    );

    // Erasure: Pat's tenant-a lead goes; tenant-b's and Quinn's stay; the phone is suppressed.
    let j = phone_job(
        &f,
        &w.tenant,
        JobKind::Erasure {
            suppress_phone: false,
        },
        pat,
        staff,
    );
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(out.counts.get("lead"), Some(&1), "{:?}", out.counts);
    let leads: Vec<String> = w
        .items_with_sk_prefix("LeadsTable", "LEAD")
        .await
        .iter()
        .filter_map(|it| s(it, "lead_id").map(str::to_string))
        .collect();
    assert!(!leads.contains(&lead_a), "Pat's lead in tenant-a is erased");
    assert!(
        leads.contains(&lead_b),
        "tenant-b's lead of the same phone stays"
    );
    assert!(leads.contains(&other), "a lead of another phone stays");
    let all = item_text_all(w).await;
    assert!(
        !all.contains("pat to a"),
        "nothing of Pat's tenant-a data is left"
    );
    assert!(all.contains("pat to b") && all.contains("quinn to a"));
    let cert_key = out.certificate_key.clone().expect("a certificate");
    assert!(object_keys(w, &f.exports_bucket).await.contains(&cert_key));
    let phone_bidx = w
        .key
        .phone(&shared_core::domain::Phone::parse(pat).unwrap());
    let entries = w.scan("PrivacyTable").await;
    assert!(
        entries
            .iter()
            .any(|it| s(it, "sk") == Some(phone_bidx.as_str())
                && s(it, "pk").is_some_and(|p| p.contains(w.tenant.as_str()))),
        "the attested phone is on tenant-a's suppression list"
    );
    let before = submissions(w).await;
    let mut e = json_submission(&phone_body(pat, "Pat", "again"));
    e["rawPath"] = json!("/v1/forms/form-phone-a/submissions");
    e["requestContext"]["http"]["path"] = json!("/v1/forms/form-phone-a/submissions");
    e["pathParameters"]["formId"] = json!("form-phone-a");
    let resp = lead_intake::handle(&w.intake(None), request(&e)).await;
    assert!(resp.status().is_success());
    assert_eq!(
        submissions(w).await,
        before,
        "not re-collected by that phone"
    );
}

async fn item_text_all(w: &World) -> String {
    w.scan("LeadsTable")
        .await
        .iter()
        .map(item_text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Issue 12, "nothing outlives its purpose": a point-in-time restore brings erased people back.
/// Ana (by email) and Pat (by phone) are erased; the leads table is then put back as it was
/// before (the restore); `devstack replay-erasures` (infra::replay) reads the certificates and
/// erases them again through the worker's steps, leaving Bob untouched; a dry run changes
/// nothing, and a second run is a no-op.
#[tokio::test]
async fn replaying_erasures_after_a_restore_erases_the_restored_subjects_again_and_only_them() {
    let f = fx().await;
    let w = &f.w;
    let since = shared_core::clock::Clock::now(w.clock.as_ref()) - time::Duration::hours(1);
    let ana = "ana.restored@example.com";
    submit(w, "demo-contact", body(ana, "Ana", "ana's enquiry")).await;
    submit(
        w,
        "demo-contact",
        body("bob@example.com", "Bob", "bob's enquiry"),
    )
    .await;
    phone_only_form(w, &w.tenant, "form-phone-a").await;
    let pat = "+40722000777";
    submit(w, "form-phone-a", phone_body(pat, "Pat", "pat's enquiry")).await;
    let backup = w.scan("LeadsTable").await;

    let j = job(
        tenant_scope(&w.tenant),
        JobKind::Erasure {
            suppress_phone: false,
        },
        ana,
    );
    completed(f.worker.run(&j, &Unlimited).await.unwrap());
    let j = phone_job(
        &f,
        &w.tenant,
        JobKind::Erasure {
            suppress_phone: false,
        },
        pat,
        "staff@tenant-a.example",
    );
    completed(f.worker.run(&j, &Unlimited).await.unwrap());
    let erased = item_text_all(w).await;
    assert!(!erased.contains("ana's enquiry") && !erased.contains("pat's enquiry"));

    // The restore: the leads table as it was before the erasures.
    let leads = w.table("LeadsTable");
    for it in &backup {
        w.clients
            .dynamo
            .put_item()
            .table_name(&leads)
            .set_item(Some(it.clone()))
            .send()
            .await
            .unwrap();
    }
    let restored = w.scan("LeadsTable").await;
    assert!(same_items(&restored, &backup));

    let endpoint = emulator_endpoint();
    let env = infra::local::local_function_env(&w.template, "dsar-worker", endpoint).unwrap();
    let replay = |dry_run: bool| {
        infra::replay::run(
            w.clients.dynamo.clone(),
            w.clients.s3.clone(),
            &w.clients.ssm,
            &env,
            since,
            dry_run,
            None,
        )
    };
    let dry = replay(true).await.unwrap();
    assert_eq!((dry.certificates_read, dry.subjects), (2, 2), "{dry:?}");
    assert_eq!(
        dry.subjects_re_erased, 2,
        "both would be erased again: {dry:?}"
    );
    assert!(
        same_items(&w.scan("LeadsTable").await, &restored),
        "a dry run changes nothing"
    );

    let report = replay(false).await.unwrap();
    assert_eq!(report.certificates_read, 2, "{report:?}");
    assert_eq!(report.subjects_re_erased, 2, "{report:?}");
    assert!(report.removed.get("submission") >= Some(&2), "{report:?}");
    let after = item_text_all(w).await;
    assert!(!after.contains("ana's enquiry"), "Ana is erased again");
    assert!(!after.contains("pat's enquiry"), "Pat is erased again");
    assert!(after.contains("bob's enquiry"), "Bob is untouched");
    let bob: Vec<Item> = backup
        .iter()
        .filter(|it| item_text(it).contains("bob"))
        .cloned()
        .collect();
    assert_eq!(bob.len(), 2, "Bob's lead and submission");
    let now = w.scan("LeadsTable").await;
    for b in &bob {
        assert!(now.contains(b), "Bob's item unchanged: {b:?}");
    }

    let again = replay(false).await.unwrap();
    assert_eq!(
        (
            again.subjects,
            again.subjects_re_erased,
            again.items_removed()
        ),
        (2, 0, 0),
        "a second run is a no-op: {again:?}"
    );
    assert!(same_items(&w.scan("LeadsTable").await, &now));
}

/// The same items, in any order.
fn same_items(a: &[Item], b: &[Item]) -> bool {
    a.len() == b.len() && a.iter().all(|it| b.contains(it))
}

/// The replay after a restore of the privacy table too, past the certificates' 7 days: the
/// completed erasure is read from the privacy table as it was before the restore (kept by the
/// operator under its old name), its suppression entries (the email, and the phone the
/// controller chose) are put back into the restored table, and the subject is erased again.
#[tokio::test]
async fn a_replay_reads_the_erasure_records_and_suppression_list_of_the_table_before_the_restore() {
    use shared_privacy::dsar::model::{
        Controller, ControllerPart, HistoryEntry, RequestType, Status,
    };
    let f = fx().await;
    let w = &f.w;
    let now = shared_core::clock::Clock::now(w.clock.as_ref());
    let ana = "ana.records@example.com";
    let mut ana_body = body(ana, "Ana", "ana's enquiry");
    ana_body["phone"] = json!("+40722000888");
    submit(w, "demo-contact", ana_body).await;
    submit(
        w,
        "demo-contact",
        body("bob@example.com", "Bob", "bob's enquiry"),
    )
    .await;
    let backup = w.scan("LeadsTable").await;
    let j = job(
        tenant_scope(&w.tenant),
        JobKind::Erasure {
            suppress_phone: true,
        },
        ana,
    );
    completed(f.worker.run(&j, &Unlimited).await.unwrap());

    // The privacy table before the restore, kept under another name: the suppression list and
    // the request's records (the worker's report, as the lifecycle stores it).
    let records = format!(
        "privacy-before-restore-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let key = |n: &str| {
        aws_sdk_dynamodb::types::KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(if n == "pk" {
                aws_sdk_dynamodb::types::KeyType::Hash
            } else {
                aws_sdk_dynamodb::types::KeyType::Range
            })
            .build()
            .unwrap()
    };
    let attr = |n: &str| {
        aws_sdk_dynamodb::types::AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    w.clients
        .dynamo
        .create_table()
        .table_name(&records)
        .key_schema(key("pk"))
        .key_schema(key("sk"))
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let privacy = w.table("PrivacyTable");
    let live = w.scan("PrivacyTable").await;
    let suppressed: Vec<&Item> = live
        .iter()
        .filter(|it| s(it, "pk").is_some_and(|p| p.ends_with("#SUPPRESSION")))
        .collect();
    assert_eq!(suppressed.len(), 2, "the email and the chosen phone");
    let bidx = w.key.email(&Email::parse(ana).unwrap());
    let part = ControllerPart {
        request_id: j.request_id.clone(),
        controller: Controller::Tenant(w.tenant.clone()),
        request_type: RequestType::Erasure,
        jurisdiction: shared_privacy::dsar::deadlines::Jurisdiction::Gdpr,
        status: Status::Completed,
        email_bidx: bidx,
        received_at: now,
        due: now.date(),
        extended_due_limit: now.date(),
        acknowledge_by: None,
        acknowledged_at: None,
        extended_at: None,
        extension_reason: None,
        denial_reason: None,
        outcome: None,
        failure: None,
        restriction_lifted_at: None,
        compelling_grounds: None,
        created_at: now,
        closed_at: Some(now),
        history: vec![HistoryEntry::new(
            now,
            "completed",
            Status::Completed,
            &shared_privacy::dsar::model::Actor::Worker,
        )],
    };
    let mut copy: Vec<Item> = suppressed.iter().map(|it| (*it).clone()).collect();
    copy.push(shared_privacy::dsar::store::part_item(&part));
    for it in copy {
        w.clients
            .dynamo
            .put_item()
            .table_name(&records)
            .set_item(Some(it))
            .send()
            .await
            .unwrap();
    }
    // The restore: the leads as before the erasure, the privacy table without the entries made
    // since; the certificate has expired (7 days).
    for it in &backup {
        w.clients
            .dynamo
            .put_item()
            .table_name(w.table("LeadsTable"))
            .set_item(Some(it.clone()))
            .send()
            .await
            .unwrap();
    }
    for it in &suppressed {
        w.clients
            .dynamo
            .delete_item()
            .table_name(&privacy)
            .set_key(shared_privacy::dsar::subjects::item_key(it))
            .send()
            .await
            .unwrap();
    }
    for k in object_keys(w, &f.exports_bucket).await {
        w.clients
            .s3
            .delete_object()
            .bucket(&f.exports_bucket)
            .key(k)
            .send()
            .await
            .unwrap();
    }
    assert!(item_text_all(w).await.contains("ana's enquiry"));

    let endpoint = emulator_endpoint();
    let env = infra::local::local_function_env(&w.template, "dsar-worker", endpoint).unwrap();
    let report = infra::replay::run(
        w.clients.dynamo.clone(),
        w.clients.s3.clone(),
        &w.clients.ssm,
        &env,
        now - time::Duration::hours(1),
        false,
        Some(&records),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            report.certificates_read,
            report.erasure_records_read,
            report.suppression_entries_restored
        ),
        (0, 1, 2),
        "{report:?}"
    );
    assert_eq!(
        (report.subjects, report.subjects_re_erased),
        (1, 1),
        "{report:?}"
    );
    let after = item_text_all(w).await;
    assert!(!after.contains("ana's enquiry") && after.contains("bob's enquiry"));
    let restored = w.scan("PrivacyTable").await;
    for it in suppressed {
        assert!(restored.contains(it), "suppression entry back: {it:?}");
    }
    // An erasure older than the restore point is not replayed.
    let old = infra::replay::run(
        w.clients.dynamo.clone(),
        w.clients.s3.clone(),
        &w.clients.ssm,
        &env,
        now + time::Duration::hours(1),
        false,
        Some(&records),
    )
    .await
    .unwrap();
    assert_eq!(
        (old.subjects, old.suppression_entries_restored),
        (0, 0),
        "{old:?}"
    );
}

/// A person known by phone corrects their phone through the tenant: the lead and their
/// phone-only submissions follow the new phone (route, `from_phone_bidx`), so the next request
/// and the next submission by the new phone reach them, and the old phone reaches nothing.
#[tokio::test]
async fn a_rectification_by_phone_moves_the_lead_and_its_submissions_to_the_new_phone() {
    let f = fx().await;
    let w = &f.w;
    let staff = "staff@tenant-a.example";
    phone_only_form(w, &w.tenant, "form-phone-a").await;
    let (old, new) = ("+40722000991", "+40 722 000 992");
    let lead = submit(
        w,
        "form-phone-a",
        phone_body(old, "Pat Wrong", "pat's enquiry"),
    )
    .await;
    let mut j = phone_job(&f, &w.tenant, JobKind::Access, old, staff);
    j.kind = JobKind::Rectification {
        changes: BTreeMap::from([
            ("phone".to_string(), new.to_string()),
            ("name".to_string(), "Pat Right".to_string()),
        ]),
    };
    completed(f.worker.run(&j, &Unlimited).await.unwrap());
    let new_bidx = w
        .key
        .phone(&shared_core::domain::Phone::parse(new).unwrap());
    let leads = w.items_with_sk_prefix("LeadsTable", "LEAD").await;
    let l = leads
        .iter()
        .find(|l| s(l, "lead_id") == Some(lead.as_str()))
        .unwrap();
    assert_eq!(s(l, "name"), Some("Pat Right"));
    assert_eq!(s(l, "phone_bidx"), Some(new_bidx.as_str()));
    let subs = w.items_with_sk_prefix("LeadsTable", "SUB#").await;
    assert_eq!(s(&subs[0], "from_phone_bidx"), Some(new_bidx.as_str()));
    assert_eq!(
        subs[0]["fields"].as_m().unwrap()["name"].as_s().unwrap(),
        "Pat Right"
    );

    let by_new = phone_job(&f, &w.tenant, JobKind::Access, new, staff);
    let out = completed(f.worker.run(&by_new, &Unlimited).await.unwrap());
    assert_eq!(out.counts.get("submission"), Some(&1), "{:?}", out.counts);
    let by_old = phone_job(&f, &w.tenant, JobKind::Access, old, staff);
    let out = completed(f.worker.run(&by_old, &Unlimited).await.unwrap());
    assert_eq!(out.counts.get("submission"), None, "{:?}", out.counts);
    let again = submit(w, "form-phone-a", phone_body(new, "Pat Right", "again")).await;
    assert_eq!(again, lead, "the new phone leads to the lead");
}

/// The replay covers account data too: an account erased on request and brought back by a
/// restore of the tenants table is erased again (user, login index), once.
#[tokio::test]
async fn a_replay_erases_a_restored_account_again() {
    let f = fx().await;
    let w = &f.w;
    let since = shared_core::clock::Clock::now(w.clock.as_ref()) - time::Duration::hours(1);
    let ana = "ana.account.restored@example.com";
    seed_account(w, ana).await;
    let backup = w.scan("TenantsTable").await;
    let j = job(
        JobScope::Account,
        JobKind::Erasure {
            suppress_phone: false,
        },
        ana,
    );
    completed(f.worker.run(&j, &Unlimited).await.unwrap());
    let has_ana = |items: &[Item]| items.iter().any(|it| item_text(it).contains(ana));
    assert!(!has_ana(&w.scan("TenantsTable").await));
    for it in &backup {
        w.clients
            .dynamo
            .put_item()
            .table_name(w.table("TenantsTable"))
            .set_item(Some(it.clone()))
            .send()
            .await
            .unwrap();
    }
    assert!(has_ana(&w.scan("TenantsTable").await));
    let env =
        infra::local::local_function_env(&w.template, "dsar-worker", emulator_endpoint()).unwrap();
    let replay = || {
        infra::replay::run(
            w.clients.dynamo.clone(),
            w.clients.s3.clone(),
            &w.clients.ssm,
            &env,
            since,
            false,
            None,
        )
    };
    let report = replay().await.unwrap();
    assert_eq!(
        (report.subjects, report.subjects_re_erased),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(report.removed.get("user"), Some(&1), "{report:?}");
    assert!(!has_ana(&w.scan("TenantsTable").await), "erased again");
    let again = replay().await.unwrap();
    assert_eq!(
        (again.subjects_re_erased, again.items_removed()),
        (0, 0),
        "{again:?}"
    );
}

// ---------------------------------------------------------------- the spam quarantine

/// The tenant's quarantined submissions (ops table), as `(tenant partition, posted email)`.
async fn quarantined(w: &World) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = w
        .scan("OpsTable")
        .await
        .into_iter()
        .filter(|it| {
            it.get("sk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk.starts_with("Q#"))
        })
        .map(|it| {
            let pk = it["pk"].as_s().unwrap().clone();
            let email = it
                .get("fields")
                .and_then(|f| f.as_m().ok())
                .and_then(|m| m.get("email"))
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            (pk, email)
        })
        .collect();
    out.sort();
    out
}

/// A quarantined submission holds the visitor's answers for 30 days: an access request finds
/// its subject's (by the email's blind index, in the request's tenant only) and an erasure
/// removes them, leaving other people's and other tenants' alone.
#[tokio::test]
async fn a_subjects_quarantined_submissions_are_in_their_access_export_and_go_with_an_erasure() {
    let f = fx().await;
    let w = &f.w;
    let tb = other_tenant(w).await;
    // Disposable addresses without a proof of work: quarantined, not leads.
    let x = "xena.quarantined@mailinator.com";
    let y = "yuri.quarantined@mailinator.com";
    submit_quietly(
        w,
        json!({"email": x, "name": "Xena Q", "message": "xena's words"}),
        "q1",
    )
    .await;
    submit_quietly(
        w,
        json!({"email": y, "name": "Yuri Q", "message": "yuri's words"}),
        "q2",
    )
    .await;
    let mut e = json_submission(&json!({"email": x, "name": "Xena B", "message": "in tenant b"}));
    e["rawPath"] = json!("/v1/forms/form-b/submissions");
    e["requestContext"]["http"]["path"] = json!("/v1/forms/form-b/submissions");
    e["pathParameters"]["formId"] = json!("form-b");
    let resp = lead_intake::handle(&w.intake(None), request(&e)).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(submissions(w).await, 0, "nothing became a lead");
    let before = quarantined(w).await;
    assert_eq!(before.len(), 3, "{before:?}");

    // X's access: X's quarantined submission in this tenant, nobody else's.
    let j = job(tenant_scope(&w.tenant), JobKind::Access, x);
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(
        out.counts.get("quarantined_submission"),
        Some(&1),
        "{:?}",
        out.counts
    );
    let doc = download_json(w, &links(w, x)[0]).await;
    let recs: Vec<&Value> = doc["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "quarantined_submission")
        .collect();
    assert_eq!(recs.len(), 1, "{doc:#}");
    let text = doc.to_string();
    assert!(text.contains("xena's words"), "{doc:#}");
    assert!(!text.contains("yuri"), "another subject");
    assert!(
        !text.contains("in tenant b") && !text.contains(tb.as_str()),
        "another tenant"
    );

    // Y's access: Y's only.
    let j = job(tenant_scope(&w.tenant), JobKind::Access, y);
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(out.counts.get("quarantined_submission"), Some(&1));
    let text = download_json(w, &links(w, y)[0]).await.to_string();
    assert!(
        text.contains("yuri's words") && !text.contains("xena"),
        "{text}"
    );

    // X's erasure in this tenant: X's record gone, Y's and tenant b's stay.
    let j = job(
        tenant_scope(&w.tenant),
        JobKind::Erasure {
            suppress_phone: false,
        },
        x,
    );
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(
        out.counts.get("quarantined_submission"),
        Some(&1),
        "{:?}",
        out.counts
    );
    let after = quarantined(w).await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.iter().any(|(_, e)| e == y));
    assert!(after
        .iter()
        .any(|(pk, e)| e == x && pk.contains(tb.as_str())));
    assert!(!after
        .iter()
        .any(|(pk, e)| e == x && pk.contains(&format!("TENANT#{}#", w.tenant))));
    // As for a lead, the erased address is suppressed in this tenant: its next post is neither
    // a lead nor quarantined (the certificate's promise holds for someone who had no lead).
    submit_quietly(
        w,
        json!({"email": x, "name": "Xena Q", "message": "again"}),
        "q3",
    )
    .await;
    assert_eq!(quarantined(w).await.len(), 2, "suppressed: nothing stored");
    assert_eq!(submissions(w).await, 0);
    // Repeated (a retried invocation of a new job): nothing more to erase, no failure.
    let j = job(
        tenant_scope(&w.tenant),
        JobKind::Erasure {
            suppress_phone: false,
        },
        x,
    );
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(out.counts.get("quarantined_submission"), None);
    assert_all_declared(w).await;
}

/// A request the tenant filed by phone finds the quarantined posts made with that phone and no
/// email (the ownership rule of a lead's submissions): not a post that carried an email next
/// to the same phone, which is that email's person's.
#[tokio::test]
async fn a_request_by_phone_finds_the_phone_only_quarantined_posts_and_no_others() {
    let f = fx().await;
    let w = &f.w;
    let staff = "staff@tenant-a.example";
    let pat = "+40722000555";
    let mut form = infra::seed::demo_form(
        &w.tenant,
        &FormId::parse("form-phone-q").unwrap(),
        WEB_ORIGIN,
    );
    for field in &mut form.fields {
        if field.name == "email" {
            field.required = false;
        }
    }
    form.spam.blocked_words = vec!["casino".into()];
    w.put_tenant(&w.tenant, TenantStatus::Active, &form)
        .await
        .unwrap();
    let post = |body: Value| async move {
        let mut e = json_submission(&body);
        e["rawPath"] = json!("/v1/forms/form-phone-q/submissions");
        e["requestContext"]["http"]["path"] = json!("/v1/forms/form-phone-q/submissions");
        e["pathParameters"]["formId"] = json!("form-phone-q");
        let resp = lead_intake::handle(&w.intake(None), request(&e)).await;
        assert_eq!(resp.status(), 201);
    };
    post(phone_body(pat, "Pat", "pat's casino post")).await;
    post(json!({"email": "eve.q@example.com", "phone": pat, "message": "eve's casino post"})).await;
    assert_eq!(submissions(w).await, 0, "both quarantined");
    assert_eq!(quarantined(w).await.len(), 2);

    let j = phone_job(&f, &w.tenant, JobKind::Access, pat, staff);
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(
        out.counts.get("quarantined_submission"),
        Some(&1),
        "{:?}",
        out.counts
    );
    let doc = download_json(w, links(w, staff).last().unwrap()).await;
    let text = doc.to_string();
    assert!(
        text.contains("pat's casino post") && !text.contains("eve's") && !text.contains("eve.q"),
        "{text}"
    );

    let j = phone_job(
        &f,
        &w.tenant,
        JobKind::Erasure {
            suppress_phone: false,
        },
        pat,
        staff,
    );
    let out = completed(f.worker.run(&j, &Unlimited).await.unwrap());
    assert_eq!(
        out.counts.get("quarantined_submission"),
        Some(&1),
        "{:?}",
        out.counts
    );
    let left = quarantined(w).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1, "eve.q@example.com");
}
