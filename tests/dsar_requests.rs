//! The data-subject request lifecycle (`dsar` and `dsar-deadlines`) against the emulator
//! (DynamoDB, SSM, SES), through real API Gateway v2 events: filing, the code read from the
//! emitted email, verification, routing to every tenant holding the email, the controller's
//! decisions (approve → a job for the worker, deny, extend once), the worker's reports, dead
//! verifications, duplicates, no enumeration, rate limits, tenant isolation, the deadline
//! digest, one-click unsubscribe, the data inventory and the logs.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::*;
use lambda_http::Request;
use serde_json::{json, Value};
use shared_accounts::auth::jwt::{AccessClaims, TokenSigner, ACCESS_TOKEN_TTL_SECS, ISSUER};
use shared_accounts::auth::permissions::Role;
use shared_accounts::dynamo::{login_item, session_item, user_item, AccountStore};
use shared_accounts::{Mfa, User};
use shared_core::clock::{Clock, UlidGenerator};
use shared_core::config::Env;
use shared_core::domain::{
    ContactDetails, Email, FormId, LeadId, SessionId, TenantId, TenantStatus, UserId,
};
use shared_core::dynamo::Item;
use shared_core::error::AppError;
use shared_leads::dynamo::new_lead_item;
use shared_mail::unsubscribe::{UnsubscribePurpose, UnsubscribeScope, UnsubscribeToken};
use shared_mail::SesMailer;
use shared_privacy::dsar::job::{
    DsarJob, JobDispatcher, JobKind, JobOutcome, JobScope, RequestProgress,
};
use shared_privacy::dsar::progress::Progress;
use shared_privacy::dsar::store::DsarStore;
use shared_privacy::inventory::{self, Table};

// ---------------------------------------------------------------- the world

/// Records the jobs the lifecycle hands to the worker.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<DsarJob>>>);

impl Recorder {
    fn jobs(&self) -> Vec<DsarJob> {
        self.0.lock().unwrap().clone()
    }
}

impl JobDispatcher for Recorder {
    async fn dispatch(&self, job: &DsarJob) -> Result<(), AppError> {
        self.0.lock().unwrap().push(job.clone());
        Ok(())
    }
}

type App = dsar::App<SesMailer, Recorder>;

struct T {
    w: World,
    app: App,
    /// auth's private key: the tests mint tokens as auth would (dsar itself cannot).
    signer: TokenSigner,
    jobs: Recorder,
    config: dsar::config::Config,
}

async fn setup() -> T {
    let w = World::new().await.expect("test world");
    let endpoint = emulator_endpoint();
    let env = infra::local::local_function_env(&w.template, "dsar", endpoint)
        .expect("dsar is in the template");
    let config =
        dsar::config::Config::from_env(&Env::from_pairs(env)).expect("template env is valid");
    let ses = infra::emulator::sesv2_client(endpoint);
    infra::seed::ensure_secrets(&w.clients, &ses, &w.template)
        .await
        .expect("secrets");
    let signer = w.token_signer().await.expect("auth's signing key");
    let verifier = w.token_verifier("dsar").await.expect("public keys");
    let jobs = Recorder::default();
    let app = App {
        store: DsarStore::new(w.clients.dynamo.clone(), config.tables.clone()),
        accounts: accounts(&w, &config),
        mailer: SesMailer::new(ses, config.sender_email.clone()),
        dispatcher: jobs.clone(),
        keys: w.key.clone(),
        verifier,
        clock: w.clock.clone(),
        ids: Arc::new(UlidGenerator),
        links: config.links.clone(),
        downloads: dsar::downloads::Downloads {
            s3: w.clients.s3.clone(),
            exports_bucket: config.exports_bucket.clone(),
            attachments_bucket: config.attachments_bucket.clone(),
        },
        settings: config.settings.clone(),
    };
    T {
        w,
        app,
        signer,
        jobs,
        config,
    }
}

fn accounts(w: &World, config: &dsar::config::Config) -> AccountStore {
    AccountStore::new(
        w.clients.dynamo.clone(),
        shared_accounts::dynamo::AccountTables {
            tenants: config.tables.tenants.clone(),
            security_log: String::new(),
            ops: config.tables.ops.clone(),
        },
        0,
    )
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

fn new_email() -> String {
    format!("{}@example.com", unique("subject"))
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

async fn new_tenant(t: &T, name: &str) -> TenantId {
    let tenant = TenantId::parse(&unique(name)).unwrap();
    let form = infra::seed::demo_form(
        &tenant,
        &FormId::parse(&unique("form")).unwrap(),
        WEB_ORIGIN,
    );
    t.w.put_tenant(&tenant, TenantStatus::Active, &form)
        .await
        .expect("tenant");
    tenant
}

/// A user of `tenant` with `role` (and `email`), with a live session and an access token.
async fn user(t: &T, tenant: &TenantId, role: Role, email: Option<&str>) -> (UserId, String) {
    let now = t.w.clock.now();
    let user = UserId::parse(&unique("us")).unwrap();
    let sid = SessionId::parse(&unique("se")).unwrap();
    let email = email.map(str::to_string).unwrap_or_else(new_email);
    put(
        t,
        &t.config.tables.tenants,
        user_item(&User {
            user_id: user.clone(),
            tenant_id: tenant.clone(),
            email: Email::parse(&email).unwrap(),
            name: "Team Member".into(),
            phone: None,
            role,
            password_hash: "unused".into(),
            email_verified: true,
            created_at: now,
            mfa: Mfa::default(),
            last_login: None,
            policy: None,
        }),
    )
    .await;
    put(
        t,
        &t.config.tables.tenants,
        session_item(&live_session(&sid, &user, tenant, now)),
    )
    .await;
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
    (user, token)
}

async fn seed_lead(t: &T, tenant: &TenantId, email: &str) -> LeadId {
    let email = Email::parse(email).unwrap();
    let bidx = t.w.key.email(&email);
    let id = t.w.key.lead_id(tenant, &bidx);
    let contact = ContactDetails {
        email: Some(email),
        name: Some("Ana Subject".into()),
        ..ContactDetails::default()
    };
    let it = new_lead_item(
        tenant,
        &id,
        &contact,
        (Some(&bidx), None),
        "new",
        t.w.clock.now(),
    );
    put(t, &t.config.tables.leads, it).await;
    id
}

/// An API Gateway v2 event, with an optional query string.
fn event(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&Value>,
    bearer: Option<&str>,
) -> Request {
    let mut e = fixture("auth/login.json");
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
        let q: serde_json::Map<String, Value> = query
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        e["queryStringParameters"] = Value::Object(q);
    }
    match body {
        Some(b) => e["body"] = json!(b.to_string()),
        None => {
            e["body"] = Value::Null;
            e["headers"].as_object_mut().unwrap().remove("content-type");
        }
    }
    if let Some(tok) = bearer {
        e["headers"]["authorization"] = json!(format!("Bearer {tok}"));
    }
    request(&e)
}

async fn call(t: &T, req: Request) -> (u16, Value) {
    let resp = dsar::handle(&t.app, req).await;
    (resp.status().as_u16(), response_json(&resp))
}

async fn file(t: &T, body: Value) -> (u16, Value) {
    call(
        t,
        event("POST", "/v1/privacy/requests", &[], Some(&body), None),
    )
    .await
}

async fn file_ok(t: &T, body: Value) -> String {
    let (status, b) = file(t, body).await;
    assert_eq!(status, 202, "{b}");
    b["request_id"].as_str().unwrap().to_string()
}

/// The last email to `to` whose subject contains `subject`.
fn last_email(t: &T, to: &str, subject: &str) -> infra::emulator::SentEmail {
    t.w.emails_to(to)
        .into_iter()
        .rev()
        .find(|m| m.subject.contains(subject))
        .unwrap_or_else(|| panic!("no email {subject:?}"))
}

/// The code of the latest code email for `request_id`, read from the email as a subject would.
fn code_for(t: &T, to: &str, request_id: &str) -> String {
    let m =
        t.w.emails_to(to)
            .into_iter()
            .rev()
            .find(|m| m.subject.contains("Confirm") && m.body.contains(request_id))
            .expect("a code email for the request");
    let at = m.body.find("enter this code: ").expect("code in the email") + 17;
    m.body[at..at + 6].to_string()
}

fn status_token_in(body: &str) -> String {
    let at = body.find("status?token=").expect("a status link") + 13;
    body[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect()
}

async fn verify(t: &T, id: &str, code: &str) -> (u16, Value) {
    call(
        t,
        event(
            "POST",
            &format!("/v1/privacy/requests/{id}/verify"),
            &[],
            Some(&json!({ "code": code })),
            None,
        ),
    )
    .await
}

async fn file_and_verify(t: &T, body: Value) -> String {
    let to = body["email"].as_str().unwrap().to_string();
    let id = file_ok(t, body).await;
    let code = code_for(t, &to, &id);
    let (status, b) = verify(t, &id, &code).await;
    assert_eq!(status, 200, "{b}");
    id
}

async fn controller(
    t: &T,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: &str,
) -> (u16, Value) {
    call(t, event(method, path, &[], body.as_ref(), Some(token))).await
}

async fn item(t: &T, table: &str, pk: &str, sk: &str) -> Option<Item> {
    t.w.clients
        .dynamo
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
}

/// Every attribute of every item in the privacy and ops tables is declared in the inventory.
async fn assert_inventory_covers(t: &T) {
    for (logical, table) in [("PrivacyTable", Table::Privacy), ("OpsTable", Table::Ops)] {
        for it in t.w.scan(logical).await {
            let sk = s(&it, "sk").unwrap_or("").to_string();
            for name in it.keys() {
                assert!(
                    inventory::declaration(table, &sk, name).is_some(),
                    "{logical}: {name} on an item with sk {sk} is not declared"
                );
            }
        }
    }
}

// ---------------------------------------------------------------- the happy path

#[tokio::test]
async fn file_verify_approve_dispatches_and_completion_closes_the_record() {
    let (logs, _guard) = capture_logs();
    let t = setup().await;
    let tenant = t.w.tenant.clone();
    let email = new_email();
    seed_lead(&t, &tenant, &email).await;
    let (_, admin) = user(&t, &tenant, Role::Admin, None).await;

    // File through the form's public id: 202, a code by email, nothing routed yet.
    let id = file_ok(
        &t,
        json!({"type": "rectification", "email": email, "form_id": t.w.form.form_id.as_str(),
               "details": {"name": "Ana Corrected"}}),
    )
    .await;
    let code_email = last_email(&t, &email, "Confirm");
    let token = status_token_in(&code_email.body);
    let (_, queue) = controller(&t, "GET", "/v1/privacy/requests", None, &admin).await;
    assert_eq!(
        queue["requests"].as_array().unwrap().len(),
        0,
        "unverified: not routed"
    );
    let status_path = format!("/v1/privacy/requests/{id}/status");
    let (s0, st) = call(
        &t,
        event("GET", &status_path, &[("token", &token)], None, None),
    )
    .await;
    assert_eq!(
        (s0, st["status"].as_str()),
        (200, Some("identity_unverified"))
    );
    let (bad, _) = call(
        &t,
        event("GET", &status_path, &[("token", "00")], None, None),
    )
    .await;
    assert_eq!(bad, 404);

    // Verify with the emailed code: routed to the tenant, the subject told it is received.
    let code = code_for(&t, &email, &id);
    let (s1, v) = verify(&t, &id, &code).await;
    assert_eq!((s1, v["status"].as_str()), (200, Some("verified")), "{v}");
    assert!(t
        .w
        .emails_to(&email)
        .iter()
        .any(|m| m.subject.contains("confirmed")));
    let (s2, again) = verify(&t, &id, &code).await;
    assert_eq!(
        (s2, again["status"].as_str()),
        (200, Some("verified")),
        "a retry answers the same"
    );

    // The controller's queue and the request.
    let (_, queue) = controller(&t, "GET", "/v1/privacy/requests", None, &admin).await;
    let rows = queue["requests"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{queue}");
    assert_eq!(rows[0]["status"], "awaiting_controller");
    assert_eq!(rows[0]["overdue"], false);
    let path = format!("/v1/privacy/requests/{id}");
    let (sg, got) = controller(&t, "GET", &path, None, &admin).await;
    assert_eq!(sg, 200, "{got}");
    assert_eq!(got["subject_email"], email.as_str());
    assert_eq!(got["corrections"]["name"], "Ana Corrected");
    assert_eq!(got["lead_ids"].as_array().unwrap().len(), 1);
    let events: Vec<&str> = got["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["verified", "routed"]);

    // Approve: the job goes to the worker with what it needs.
    let (sa, a) = controller(&t, "POST", &format!("{path}/approve"), None, &admin).await;
    assert_eq!((sa, a["status"].as_str()), (200, Some("approved")), "{a}");
    let jobs = t.jobs.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].request_id, id);
    assert_eq!(jobs[0].subject_email, email);
    assert_eq!(
        jobs[0].scope,
        JobScope::Tenant {
            tenant_id: tenant.clone()
        }
    );
    assert!(
        matches!(&jobs[0].kind, JobKind::Rectification { changes } if changes["name"] == "Ana Corrected")
    );
    // Approving twice re-dispatches (idempotent worker), denying an approved one is refused.
    let (sa2, _) = controller(&t, "POST", &format!("{path}/approve"), None, &admin).await;
    assert_eq!(sa2, 200);
    let (sd, _) = controller(
        &t,
        "POST",
        &format!("{path}/deny"),
        Some(json!({"reason": "x"})),
        &admin,
    )
    .await;
    assert_eq!(sd, 409);

    // The worker reports: started, then completed (twice: the second changes nothing).
    let progress = Progress {
        store: DsarStore::new(t.w.clients.dynamo.clone(), t.config.tables.clone()),
        accounts: accounts(&t.w, &t.config),
        mailer: SesMailer::new(
            infra::emulator::sesv2_client(emulator_endpoint()),
            t.config.sender_email.clone(),
        ),
        key: t.w.key.clone(),
        clock: t.w.clock.clone(),
        links: t.config.links.clone(),
    };
    // What the invocation carries is the request's id: the worker reads the subject's email and
    // the corrections from the open request (a payload in the failure queue holds neither).
    let payload = serde_json::to_string(&jobs[0]).unwrap();
    assert!(
        !payload.contains(&email) && !payload.contains("Ana Corrected"),
        "{payload}"
    );
    let record = progress.subject(&id).await.unwrap().expect("the request");
    assert_eq!(record.email.as_deref(), Some(email.as_str()));
    assert_eq!(record.corrections["name"], "Ana Corrected");
    progress.started(&jobs[0]).await.unwrap();
    let (_, st) = call(
        &t,
        event("GET", &status_path, &[("token", &token)], None, None),
    )
    .await;
    assert_eq!(st["status"], "in_progress");
    let outcome = JobOutcome {
        counts: [("lead".to_string(), 1u64)].into(),
        ..JobOutcome::default()
    };
    progress.completed(&jobs[0], &outcome).await.unwrap();
    progress.completed(&jobs[0], &outcome).await.unwrap();
    let done: Vec<_> =
        t.w.emails_to(&email)
            .into_iter()
            .filter(|m| m.subject.contains("complete"))
            .collect();
    assert_eq!(done.len(), 1, "the subject is answered once");
    assert!(done[0].body.contains("supervisory authority"));
    let (_, st) = call(
        &t,
        event("GET", &status_path, &[("token", &token)], None, None),
    )
    .await;
    assert_eq!(st["status"], "completed", "{st}");
    assert!(
        !st.to_string().contains(&email),
        "the status page shows nothing personal"
    );

    // Closed: the email and the corrections are gone from the record, the identity stays as a
    // keyed hash, and both records carry their retention bucket (24 months).
    let privacy = t.config.tables.privacy.clone();
    let req = item(&t, &privacy, &format!("DSAR#{id}"), "REQUEST")
        .await
        .unwrap();
    assert!(
        !req.contains_key("email") && !req.contains_key("details"),
        "{req:?}"
    );
    assert!(s(&req, "email_bidx").is_some());
    assert!(s(&req, "exp_bucket")
        .unwrap()
        .starts_with("EXP#dsar-record#"));
    let part = item(
        &t,
        &privacy,
        &format!("TENANT#{tenant}#DSAR"),
        &format!("PART#{id}"),
    )
    .await
    .unwrap();
    assert_eq!(s(&part, "status"), Some("completed"));
    assert!(s(&part, "exp_bucket")
        .unwrap()
        .starts_with("EXP#dsar-record#"));
    assert!(
        !part.contains_key("queue_pk") && !part.contains_key("due_pk"),
        "left the queue"
    );
    let (_, queue) = controller(&t, "GET", "/v1/privacy/requests", None, &admin).await;
    assert_eq!(queue["requests"].as_array().unwrap().len(), 0);
    let (_, all) = call(
        &t,
        event(
            "GET",
            "/v1/privacy/requests",
            &[("status", "all")],
            None,
            Some(&admin),
        ),
    )
    .await;
    assert_eq!(all["requests"].as_array().unwrap().len(), 1);

    assert_inventory_covers(&t).await;
    // The logs carry the request's id (filing, verification, approval) and nothing of the person.
    assert_logs_hold_without(
        &logs,
        &[&id, "request completed"],
        &[
            email.as_str(),
            code.as_str(),
            token.as_str(),
            "Ana Corrected",
            "Ana Subject",
        ],
    );
}

// ---------------------------------------------------------------- decisions

#[tokio::test]
async fn a_denial_gives_the_reason_and_the_right_to_complain() {
    let t = setup().await;
    let email = new_email();
    let (_, owner) = user(&t, &t.w.tenant, Role::Owner, None).await;
    let id = file_and_verify(
        &t,
        json!({"type": "erasure", "email": email, "tenant": t.w.tenant.as_str()}),
    )
    .await;
    let path = format!("/v1/privacy/requests/{id}/deny");
    let (s0, e) = controller(&t, "POST", &path, Some(json!({"reason": ""})), &owner).await;
    assert_eq!(
        (s0, e["error"]["code"].as_str()),
        (400, Some("invalid_reason"))
    );
    let (s1, d) = controller(
        &t,
        "POST",
        &path,
        Some(json!({"reason": "Records under a legal hold for an ongoing dispute."})),
        &owner,
    )
    .await;
    assert_eq!((s1, d["status"].as_str()), (200, Some("denied")), "{d}");
    let m = last_email(&t, &email, "refused");
    assert!(m.body.contains("legal hold for an ongoing dispute"));
    assert!(m.body.contains("supervisory authority"));
    assert!(t.jobs.jobs().is_empty(), "nothing is executed");
    let (s2, _) = controller(&t, "POST", &path, Some(json!({"reason": "again"})), &owner).await;
    assert_eq!(s2, 409);
    // Closed: the record keeps the reason, not the email.
    let req = item(
        &t,
        &t.config.tables.privacy,
        &format!("DSAR#{id}"),
        "REQUEST",
    )
    .await
    .unwrap();
    assert_eq!(s(&req, "status"), Some("completed"));
    assert!(!req.contains_key("email"));
}

#[tokio::test]
async fn an_extension_is_granted_once_and_the_subject_is_told() {
    let t = setup().await;
    let email = new_email();
    let (_, admin) = user(&t, &t.w.tenant, Role::Admin, None).await;
    let id = file_and_verify(&t, json!({"type": "access", "email": email, "form_id": t.w.form.form_id.as_str(), "jurisdiction": "ccpa"})).await;
    let get = format!("/v1/privacy/requests/{id}");
    let (_, before) = controller(&t, "GET", &get, None, &admin).await;
    assert!(
        before["acknowledge_by"].is_string(),
        "CCPA: acknowledgement date"
    );
    let path = format!("/v1/privacy/requests/{id}/extend");
    let (s1, x) = controller(
        &t,
        "POST",
        &path,
        Some(json!({"reason": "Data in many systems."})),
        &admin,
    )
    .await;
    assert_eq!(s1, 200, "{x}");
    let today = t.w.clock.now().date();
    assert_eq!(
        x["due_date"],
        shared_privacy::dsar::deadlines::ymd(today + time::Duration::days(90))
    );
    let m = last_email(&t, &email, "more time");
    assert!(m.body.contains("Data in many systems."));
    let (s2, e) = controller(&t, "POST", &path, Some(json!({"reason": "Again."})), &admin).await;
    assert_eq!(
        (s2, e["error"]["code"].as_str()),
        (409, Some("already_extended"))
    );
    let (_, after) = controller(&t, "GET", &get, None, &admin).await;
    assert_eq!(after["extended"], true);
    assert_eq!(after["status"], "awaiting_controller");

    // Too late: after the first period an extension is refused.
    let email2 = new_email();
    let id2 = file_and_verify(
        &t,
        json!({"type": "access", "email": email2, "form_id": t.w.form.form_id.as_str()}),
    )
    .await;
    t.w.clock.advance(time::Duration::days(40));
    let (_, admin) = user(&t, &t.w.tenant, Role::Admin, None).await;
    let (s3, e3) = controller(
        &t,
        "POST",
        &format!("/v1/privacy/requests/{id2}/extend"),
        Some(json!({"reason": "Late."})),
        &admin,
    )
    .await;
    assert_eq!(
        (s3, e3["error"]["code"].as_str()),
        (409, Some("extension_too_late"))
    );
}

// ---------------------------------------------------------------- verification

#[tokio::test]
async fn five_wrong_codes_kill_the_request() {
    let t = setup().await;
    let email = new_email();
    let id = file_ok(
        &t,
        json!({"type": "access", "email": email, "form_id": t.w.form.form_id.as_str()}),
    )
    .await;
    let code = code_for(&t, &email, &id);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (1..=4).rev() {
        let (st, e) = verify(&t, &id, wrong).await;
        assert_eq!(
            (st, e["error"]["code"].as_str()),
            (400, Some("invalid_code")),
            "{e}"
        );
        assert!(e["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{left} tries")));
    }
    let (st, e) = verify(&t, &id, wrong).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (409, Some("request_expired"))
    );
    let (st, _) = verify(&t, &id, &code).await;
    assert_eq!(st, 409, "dead: the right code no longer works");
    let req = item(
        &t,
        &t.config.tables.privacy,
        &format!("DSAR#{id}"),
        "REQUEST",
    )
    .await
    .unwrap();
    assert_eq!(s(&req, "status"), Some("expired"));
    assert!(!req.contains_key("email") && !req.contains_key("code_hash"));
    // Malformed input is a 4xx, never a 5xx.
    let (st, _) = call(
        &t,
        event(
            "POST",
            &format!("/v1/privacy/requests/{id}/verify"),
            &[],
            Some(&json!({"code": 5})),
            None,
        ),
    )
    .await;
    assert_eq!(st, 400);
    let (st, _) = verify(&t, "dsr-nope", "123456").await;
    assert_eq!(st, 404);
    let (st, _) = verify(&t, "../../x", "123456").await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn a_duplicate_request_needs_its_own_verification() {
    let t = setup().await;
    let email = new_email();
    let body = json!({"type": "erasure", "email": email, "form_id": t.w.form.form_id.as_str()});
    let first = file_ok(&t, body.clone()).await;
    let first_code = code_for(&t, &email, &first);
    let (st, _) = verify(&t, &first, &first_code).await;
    assert_eq!(st, 200);
    let second = file_ok(&t, body).await;
    assert_ne!(first, second);
    let req = item(
        &t,
        &t.config.tables.privacy,
        &format!("DSAR#{second}"),
        "REQUEST",
    )
    .await
    .unwrap();
    assert_eq!(
        s(&req, "status"),
        Some("identity_unverified"),
        "a duplicate is not verified by the first"
    );
    let second_code = code_for(&t, &email, &second);
    if second_code != first_code {
        let (st, _) = verify(&t, &second, &first_code).await;
        assert_eq!(
            st, 400,
            "the first request's code does not confirm the second"
        );
    }
    let (st, _) = verify(&t, &second, &second_code).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn an_unknown_email_gets_the_same_answer() {
    let t = setup().await;
    let known = new_email();
    seed_lead(&t, &t.w.tenant, &known).await;
    let unknown = new_email();
    let (s1, a) = file(&t, json!({"type": "access", "email": known})).await;
    let (s2, b) = file(&t, json!({"type": "access", "email": unknown})).await;
    assert_eq!((s1, s2), (202, 202));
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&a), keys(&b));
    assert_eq!(a["status"], b["status"]);
    // Both get a code; only after verification does the unknown one learn nothing is held.
    let id = b["request_id"].as_str().unwrap().to_string();
    let code = code_for(&t, &unknown, &id);
    let (st, _) = verify(&t, &id, &code).await;
    assert_eq!(st, 200);
    let m = last_email(&t, &unknown, "complete");
    assert!(m.body.contains("No data about you was found"));
    // Bad input: 4xx naming fields, never echoing values.
    let (st, e) = file(&t, json!({"type": "steal", "email": "nope"})).await;
    assert_eq!(st, 400);
    assert!(!e.to_string().contains("nope") && !e.to_string().contains("steal"));
    let (st, _) = file(
        &t,
        json!({"type": "access", "email": unknown, "form_id": "no-such-form"}),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = file(&t, json!({"type": "access", "email": unknown, "shoe": 1})).await;
    assert_eq!(st, 400);
    let (st, _) = call(&t, event("POST", "/v1/privacy/requests", &[], None, None)).await;
    assert_eq!(st, 415);
}

// ---------------------------------------------------------------- routing and isolation

#[tokio::test]
async fn a_request_naming_no_tenant_goes_to_each_tenant_holding_the_email() {
    let t = setup().await;
    let a = t.w.tenant.clone();
    let b = new_tenant(&t, "tb").await;
    let c = new_tenant(&t, "tc").await;
    let email = new_email();
    seed_lead(&t, &a, &email).await;
    seed_lead(&t, &b, &email).await;
    seed_lead(&t, &c, &new_email()).await;
    let id = file_and_verify(
        &t,
        json!({"type": "access", "email": email, "scope": "tenant"}),
    )
    .await;
    let (_, admin_a) = user(&t, &a, Role::Admin, None).await;
    let (_, admin_b) = user(&t, &b, Role::Owner, None).await;
    let (_, admin_c) = user(&t, &c, Role::Admin, None).await;
    for (tok, n) in [(&admin_a, 1), (&admin_b, 1), (&admin_c, 0)] {
        let (_, q) = controller(&t, "GET", "/v1/privacy/requests", None, tok).await;
        assert_eq!(q["requests"].as_array().unwrap().len(), n, "{q}");
    }
    let path = format!("/v1/privacy/requests/{id}");
    let (sc, _) = controller(&t, "GET", &path, None, &admin_c).await;
    assert_eq!(sc, 404, "not routed to a tenant without the email");
    // Each tenant decides its own part; the subject sees one request.
    controller(
        &t,
        "POST",
        &format!("{path}/deny"),
        Some(json!({"reason": "Not our customer."})),
        &admin_b,
    )
    .await;
    let token = status_token_in(&last_email(&t, &email, "Confirm").body);
    let (_, st) = call(
        &t,
        event(
            "GET",
            &format!("{path}/status"),
            &[("token", &token)],
            None,
            None,
        ),
    )
    .await;
    assert_eq!(st["status"], "awaiting_controller", "{st}");
    assert_eq!(st["parts"].as_array().unwrap().len(), 2);
    let (sa, _) = controller(&t, "POST", &format!("{path}/approve"), None, &admin_a).await;
    assert_eq!(sa, 200);
    assert_eq!(t.jobs.jobs()[0].scope, JobScope::Tenant { tenant_id: a });
}

/// Someone the spam defence quarantined has no lead, but the tenant holds their answers for 30
/// days: a request naming no tenant goes to that tenant too (the ops table's `by_subject`
/// index), rather than closing as "no data held".
#[tokio::test]
async fn a_request_naming_no_tenant_finds_a_tenant_holding_only_a_quarantined_submission() {
    let t = setup().await;
    let a = t.w.tenant.clone();
    let b = new_tenant(&t, "tb").await;
    let email = format!("{}@mailinator.com", unique("quarantined"));
    // A disposable address without a proof of work: quarantined, no lead.
    let e = json_submission(&json!({"email": email, "name": "Q", "message": "cheap pills"}));
    let resp = lead_intake::handle(&t.w.intake(None), request(&e)).await;
    assert_eq!(resp.status(), 201);
    assert!(t
        .w
        .items_with_sk_prefix("LeadsTable", "LEAD")
        .await
        .is_empty());
    let id = file_and_verify(
        &t,
        json!({"type": "access", "email": email, "scope": "tenant"}),
    )
    .await;
    let (_, admin_a) = user(&t, &a, Role::Admin, None).await;
    let (_, admin_b) = user(&t, &b, Role::Admin, None).await;
    for (tok, n) in [(&admin_a, 1), (&admin_b, 0)] {
        let (_, q) = controller(&t, "GET", "/v1/privacy/requests", None, tok).await;
        assert_eq!(q["requests"].as_array().unwrap().len(), n, "{q}");
    }
    let (sc, _) = controller(
        &t,
        "GET",
        &format!("/v1/privacy/requests/{id}"),
        None,
        &admin_a,
    )
    .await;
    assert_eq!(sc, 200);
}

#[tokio::test]
async fn another_tenant_cannot_see_or_act_on_a_request() {
    let t = setup().await;
    let other = new_tenant(&t, "tb").await;
    let email = new_email();
    let id = file_and_verify(
        &t,
        json!({"type": "erasure", "email": email, "form_id": t.w.form.form_id.as_str()}),
    )
    .await;
    let (_, stranger) = user(&t, &other, Role::Owner, None).await;
    let path = format!("/v1/privacy/requests/{id}");
    for (method, p, body) in [
        ("GET", path.clone(), None),
        ("POST", format!("{path}/approve"), None),
        (
            "POST",
            format!("{path}/deny"),
            Some(json!({"reason": "no"})),
        ),
        (
            "POST",
            format!("{path}/extend"),
            Some(json!({"reason": "no"})),
        ),
        ("POST", format!("{path}/lift-restriction"), None),
    ] {
        let (st, e) = controller(&t, method, &p, body, &stranger).await;
        assert_eq!(st, 404, "{method} {p}: {e}");
    }
    let (_, q) = controller(&t, "GET", "/v1/privacy/requests", None, &stranger).await;
    assert_eq!(q["requests"].as_array().unwrap().len(), 0);
    assert!(t.jobs.jobs().is_empty());
    // Roles: members and viewers may not see the queue; no token is 401.
    let (_, member) = user(&t, &t.w.tenant, Role::Member, None).await;
    let (st, _) = controller(&t, "GET", "/v1/privacy/requests", None, &member).await;
    assert_eq!(st, 403);
    let (st, _) = call(&t, event("GET", "/v1/privacy/requests", &[], None, None)).await;
    assert_eq!(st, 401);
    // A cursor of one tenant is refused in another.
    let (st, _) = call(
        &t,
        event(
            "GET",
            "/v1/privacy/requests",
            &[("cursor", "abc.def")],
            None,
            Some(&stranger),
        ),
    )
    .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn filings_are_rate_limited_per_email() {
    let t = setup().await;
    let email = new_email();
    for _ in 0..3 {
        file_ok(&t, json!({"type": "access", "email": email})).await;
    }
    let resp = dsar::handle(
        &t.app,
        event(
            "POST",
            "/v1/privacy/requests",
            &[],
            Some(&json!({"type": "access", "email": email})),
            None,
        ),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 429);
    assert!(header(&resp, "retry-after").is_some());
    // Another address is not limited by this one.
    file_ok(&t, json!({"type": "access", "email": new_email()})).await;

    // Per client IP (keyed hash): many addresses from one IP are limited too.
    let mut t = setup().await;
    t.app.settings.rate_per_ip_per_hour = 2;
    for _ in 0..2 {
        file_ok(&t, json!({"type": "access", "email": new_email()})).await;
    }
    let (st, e) = file(&t, json!({"type": "access", "email": new_email()})).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    let windows = t.w.items_with_sk_prefix("OpsTable", "DSARRATE").await;
    assert!(
        windows
            .iter()
            .all(|w| !s(w, "pk").unwrap().contains("203.0.113")),
        "the IP is hashed"
    );
}

// ---------------------------------------------------------------- account data, on behalf

#[tokio::test]
async fn account_requests_are_decided_by_the_platform() {
    let t = setup().await;
    // A member's access request: approved by the platform at once.
    let member_email = new_email();
    let (member, _) = user(&t, &t.w.tenant, Role::Member, Some(&member_email)).await;
    let bidx = t.w.key.email(&Email::parse(&member_email).unwrap());
    put(
        &t,
        &t.config.tables.tenants,
        login_item(&bidx, &t.w.tenant, &member),
    )
    .await;
    let id = file_and_verify(
        &t,
        json!({"type": "access", "email": member_email, "scope": "account"}),
    )
    .await;
    let jobs = t.jobs.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].request_id.as_str(), &jobs[0].scope),
        (id.as_str(), &JobScope::Account)
    );
    // An owner's erasure: refused with the way to do it (close the workspace).
    let owner_email = new_email();
    let (owner, _) = user(&t, &t.w.tenant, Role::Owner, Some(&owner_email)).await;
    let obidx = t.w.key.email(&Email::parse(&owner_email).unwrap());
    put(
        &t,
        &t.config.tables.tenants,
        login_item(&obidx, &t.w.tenant, &owner),
    )
    .await;
    file_and_verify(
        &t,
        json!({"type": "erasure", "email": owner_email, "scope": "account"}),
    )
    .await;
    assert_eq!(t.jobs.jobs().len(), 1, "no job for the owner's erasure");
    let m = last_email(&t, &owner_email, "refused");
    assert!(m.body.contains("closing the workspace") && m.body.contains("supervisory authority"));
}

#[tokio::test]
async fn a_controller_files_on_behalf_safely_by_default() {
    let t = setup().await;
    let (_, admin) = user(&t, &t.w.tenant, Role::Admin, None).await;
    let email = new_email();
    let (st, b) = controller(
        &t,
        "POST",
        "/v1/privacy/requests/on-behalf",
        Some(json!({"type": "access", "email": email})),
        &admin,
    )
    .await;
    assert_eq!(
        (st, b["status"].as_str()),
        (201, Some("identity_unverified")),
        "{b}"
    );
    let id = b["request_id"].as_str().unwrap();
    assert!(last_email(&t, &email, "Confirm")
        .body
        .contains("on your behalf"));
    let (_, q) = controller(&t, "GET", "/v1/privacy/requests", None, &admin).await;
    assert_eq!(
        q["requests"].as_array().unwrap().len(),
        0,
        "not decidable before the subject confirms"
    );
    let code = code_for(&t, &email, id);
    verify(&t, id, &code).await;
    // Attested: verified at once, the attestation in the history.
    let email2 = new_email();
    let (st, b) = controller(
        &t,
        "POST",
        "/v1/privacy/requests/on-behalf",
        Some(
            json!({"type": "restriction", "email": email2, "identity_attested": "signed_document"}),
        ),
        &admin,
    )
    .await;
    assert_eq!((st, b["status"].as_str()), (201, Some("verified")), "{b}");
    let (_, got) = controller(
        &t,
        "GET",
        &format!("/v1/privacy/requests/{}", b["request_id"].as_str().unwrap()),
        None,
        &admin,
    )
    .await;
    assert!(got["filed_by"].as_str().unwrap().starts_with("user:"));
    let (st, _) = controller(
        &t,
        "POST",
        "/v1/privacy/requests/on-behalf",
        Some(json!({"type": "access", "email": email2, "identity_attested": "trust_me"})),
        &admin,
    )
    .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn a_restriction_is_lifted_only_after_the_subject_is_told() {
    let t = setup().await;
    let (_, admin) = user(&t, &t.w.tenant, Role::Admin, None).await;
    let email = new_email();
    let id = file_and_verify(
        &t,
        json!({"type": "restriction", "email": email, "form_id": t.w.form.form_id.as_str()}),
    )
    .await;
    let path = format!("/v1/privacy/requests/{id}");
    let (st, _) = controller(
        &t,
        "POST",
        &format!("{path}/lift-restriction"),
        None,
        &admin,
    )
    .await;
    assert_eq!(st, 409, "not in force yet");
    controller(&t, "POST", &format!("{path}/approve"), None, &admin).await;
    let progress = Progress {
        store: DsarStore::new(t.w.clients.dynamo.clone(), t.config.tables.clone()),
        accounts: accounts(&t.w, &t.config),
        mailer: SesMailer::new(
            infra::emulator::sesv2_client(emulator_endpoint()),
            t.config.sender_email.clone(),
        ),
        key: t.w.key.clone(),
        clock: t.w.clock.clone(),
        links: t.config.links.clone(),
    };
    progress
        .completed(&t.jobs.jobs()[0], &JobOutcome::default())
        .await
        .unwrap();
    // In force: the request stays open (the subject must be told before a lift).
    let req = item(
        &t,
        &t.config.tables.privacy,
        &format!("DSAR#{id}"),
        "REQUEST",
    )
    .await
    .unwrap();
    assert!(req.contains_key("email"));
    let (st, b) = controller(
        &t,
        "POST",
        &format!("{path}/lift-restriction"),
        None,
        &admin,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert!(last_email(&t, &email, "lifted").body.contains(&id));
    let jobs = t.jobs.jobs();
    assert_eq!(jobs.last().unwrap().kind, JobKind::LiftRestriction);
    let req = item(
        &t,
        &t.config.tables.privacy,
        &format!("DSAR#{id}"),
        "REQUEST",
    )
    .await
    .unwrap();
    assert!(!req.contains_key("email"), "closed once lifted");
    let (st, _) = controller(
        &t,
        "POST",
        &format!("{path}/lift-restriction"),
        None,
        &admin,
    )
    .await;
    assert_eq!(st, 409, "once");
}

/// The lead item of `lead`, read consistently.
async fn lead_item(t: &T, lead: &LeadId) -> Item {
    item(
        t,
        &t.config.tables.leads,
        &format!("TENANT#{}#LEAD#{}", t.w.tenant, lead),
        "LEAD",
    )
    .await
    .expect("the lead")
}

fn is_restricted(it: &Item) -> bool {
    it.get("restricted") == Some(&AttributeValue::Bool(true))
}

/// GDPR Art. 21(1) with 18(1)(d): an objection to legitimate-interest processing restricts the
/// subject's lead as soon as it is verified, with no tenant action; the tenant then either
/// records compelling grounds (owner/admin; the subject is told them with the right to
/// complain; the restriction is lifted; never a plain denial) or upholds it (approve: the data
/// is erased). A restriction the subject obtained by a restriction request is not lifted by an
/// objection's grounds.
#[tokio::test]
async fn a_legitimate_interest_objection_restricts_at_once_until_grounds_are_recorded_or_it_is_upheld(
) {
    let t = setup().await;
    let tenant = t.w.tenant.clone();
    let (_, admin) = user(&t, &tenant, Role::Admin, None).await;
    let (_, member) = user(&t, &tenant, Role::Member, None).await;
    let form = t.w.form.form_id.as_str().to_string();
    let objection = |email: &str| {
        json!({"type": "objection", "details": {"processing": "legitimate_interest"},
               "email": email, "form_id": form})
    };

    // Verified: restricted at once, nothing dispatched, the tenant still to decide.
    let ana = new_email();
    let lead = seed_lead(&t, &tenant, &ana).await;
    let jobs_before = t.jobs.jobs().len();
    let id = file_and_verify(&t, objection(&ana)).await;
    let it = lead_item(&t, &lead).await;
    assert!(is_restricted(&it), "restricted at verification: {it:?}");
    assert!(it.contains_key("restricted_at"));
    assert_eq!(t.jobs.jobs().len(), jobs_before, "the tenant decides");
    let path = format!("/v1/privacy/requests/{id}");
    let (_, got) = controller(&t, "GET", &path, None, &admin).await;
    assert_eq!(got["status"], "awaiting_controller", "{got}");
    assert_eq!(got["objection"], "legitimate_interest");
    let events: Vec<&str> = got["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"restricted_pending_decision"),
        "{events:?}"
    );

    // Refused only by recording grounds, by owners and admins, with bounded text.
    let grounds_path = format!("{path}/compelling-grounds");
    let (sd, b) = controller(
        &t,
        "POST",
        &format!("{path}/deny"),
        Some(json!({"reason": "No."})),
        &admin,
    )
    .await;
    assert_eq!(
        (sd, b["error"]["code"].as_str()),
        (409, Some("compelling_grounds_required"))
    );
    let (sm, _) = controller(
        &t,
        "POST",
        &grounds_path,
        Some(json!({"grounds": "Fraud prevention."})),
        &member,
    )
    .await;
    assert_eq!(sm, 403, "members cannot decide");
    for bad in [
        json!({"grounds": "   "}),
        json!({"grounds": "x".repeat(1001)}),
        json!({"grounds": "ok", "extra": 1}),
        json!({}),
    ] {
        let (sb, b) = controller(&t, "POST", &grounds_path, Some(bad.clone()), &admin).await;
        assert_eq!(sb, 400, "{bad}: {b}");
    }
    assert!(
        is_restricted(&lead_item(&t, &lead).await),
        "bad input changes nothing"
    );

    let grounds = "We must keep processing your order history to defend pending legal claims.";
    let (sg, b) = controller(
        &t,
        "POST",
        &grounds_path,
        Some(json!({ "grounds": grounds })),
        &admin,
    )
    .await;
    assert_eq!(sg, 200, "{b}");
    assert_eq!(b["status"], "denied");
    let told = last_email(&t, &ana, "continues");
    assert!(
        told.body.contains(grounds),
        "the subject is told the grounds"
    );
    assert!(
        told.body.contains("supervisory authority"),
        "and the right to complain"
    );
    assert!(told.body.contains(&id));
    let it = lead_item(&t, &lead).await;
    assert!(!is_restricted(&it), "lifted: {it:?}");
    assert!(!it.contains_key("restricted_for"));
    let actions: Vec<String> =
        t.w.items_with_sk_prefix("LeadsTable", "AUDIT#")
            .await
            .iter()
            .filter(|a| s(a, "pk") == Some(&format!("TENANT#{tenant}#LEAD#{lead}")))
            .filter_map(|a| s(a, "action").map(str::to_string))
            .collect();
    assert!(
        actions.contains(&"lead.restricted".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"lead.unrestricted".to_string()),
        "{actions:?}"
    );
    let (_, got) = controller(&t, "GET", &path, None, &admin).await;
    assert_eq!(
        got["compelling_grounds"], grounds,
        "kept on the request: {got}"
    );
    assert!(got["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["event"] == "compelling_grounds"
            && h["actor"].as_str().unwrap().starts_with("user:")));
    let req = item(
        &t,
        &t.config.tables.privacy,
        &format!("DSAR#{id}"),
        "REQUEST",
    )
    .await
    .unwrap();
    assert!(!req.contains_key("email"), "closed");
    let (again, _) = controller(
        &t,
        "POST",
        &grounds_path,
        Some(json!({ "grounds": grounds })),
        &admin,
    )
    .await;
    assert_eq!(again, 409, "once");

    // Upheld: approving carries it out as an erasure; the lead stays restricted meanwhile.
    let bea = new_email();
    let lead_b = seed_lead(&t, &tenant, &bea).await;
    let id_b = file_and_verify(&t, objection(&bea)).await;
    let (sa, b) = controller(
        &t,
        "POST",
        &format!("/v1/privacy/requests/{id_b}/approve"),
        None,
        &admin,
    )
    .await;
    assert_eq!(sa, 200, "{b}");
    let job = t.jobs.jobs().last().unwrap().clone();
    assert_eq!(job.request_id, id_b);
    assert_eq!(
        job.kind,
        JobKind::Erasure {
            suppress_phone: false
        }
    );
    assert!(is_restricted(&lead_item(&t, &lead_b).await));

    // A restriction the subject obtained otherwise is not the objection's to lift.
    let cai = new_email();
    let lead_c = seed_lead(&t, &tenant, &cai).await;
    t.w.clients
        .dynamo
        .update_item()
        .table_name(&t.config.tables.leads)
        .key(
            "pk",
            AttributeValue::S(format!("TENANT#{tenant}#LEAD#{lead_c}")),
        )
        .key("sk", AttributeValue::S("LEAD".into()))
        .update_expression("SET restricted = :t, restricted_at = :at")
        .expression_attribute_values(":t", AttributeValue::Bool(true))
        .expression_attribute_values(":at", AttributeValue::S("2026-01-01T00:00:00Z".into()))
        .send()
        .await
        .unwrap();
    let id_c = file_and_verify(&t, objection(&cai)).await;
    let (sg, b) = controller(
        &t,
        "POST",
        &format!("/v1/privacy/requests/{id_c}/compelling-grounds"),
        Some(json!({ "grounds": grounds })),
        &admin,
    )
    .await;
    assert_eq!(sg, 200, "{b}");
    let it = lead_item(&t, &lead_c).await;
    assert!(is_restricted(&it), "the earlier restriction stays: {it:?}");
    assert_eq!(s(&it, "restricted_at"), Some("2026-01-01T00:00:00Z"));
    // The same for a lead the worker restricted on a restriction request (its hold recorded).
    let dan = new_email();
    let lead_d = seed_lead(&t, &tenant, &dan).await;
    t.w.clients
        .dynamo
        .update_item()
        .table_name(&t.config.tables.leads)
        .key(
            "pk",
            AttributeValue::S(format!("TENANT#{tenant}#LEAD#{lead_d}")),
        )
        .key("sk", AttributeValue::S("LEAD".into()))
        .update_expression("SET restricted = :t, restricted_at = :at, restricted_by_request = :t")
        .expression_attribute_values(":t", AttributeValue::Bool(true))
        .expression_attribute_values(":at", AttributeValue::S("2026-01-02T00:00:00Z".into()))
        .send()
        .await
        .unwrap();
    let id_d = file_and_verify(&t, objection(&dan)).await;
    assert!(lead_item(&t, &lead_d).await.contains_key("restricted_for"));
    let (sg, b) = controller(
        &t,
        "POST",
        &format!("/v1/privacy/requests/{id_d}/compelling-grounds"),
        Some(json!({ "grounds": grounds })),
        &admin,
    )
    .await;
    assert_eq!(sg, 200, "{b}");
    assert_eq!(b["leads_unrestricted"], 0);
    assert!(is_restricted(&lead_item(&t, &lead_d).await));
    assert_inventory_covers(&t).await;
}

// ---------------------------------------------------------------- deadlines

#[tokio::test]
async fn the_daily_digest_lists_due_and_overdue_requests_once_a_day() {
    let (logs, _guard) = capture_logs();
    let t = setup().await;
    let owner_email = new_email();
    user(&t, &t.w.tenant, Role::Owner, Some(&owner_email)).await;
    let subject = new_email();
    let early = file_and_verify(
        &t,
        json!({"type": "access", "email": subject, "form_id": t.w.form.form_id.as_str()}),
    )
    .await;
    // An account-data request: the platform's own, to the operator.
    let account = file_and_verify(
        &t,
        json!({"type": "portability", "email": new_email(), "scope": "account"}),
    )
    .await;
    t.w.clock.advance(time::Duration::days(27));
    let later = file_and_verify(
        &t,
        json!({"type": "erasure", "email": new_email(), "form_id": t.w.form.form_id.as_str()}),
    )
    .await;

    let env =
        infra::local::local_function_env(&t.w.template, "dsar-deadlines", emulator_endpoint())
            .unwrap();
    let config = dsar_deadlines::config::Config::from_env(&Env::from_pairs(env)).unwrap();
    let meter = t.w.meter();
    let app = dsar_deadlines::App {
        store: DsarStore::new(meter.instrument(&t.w.clients.dynamo), config.tables.clone()),
        accounts: accounts(&t.w, &t.config),
        mailer: SesMailer::new(
            infra::emulator::sesv2_client(emulator_endpoint()),
            config.sender_email.clone(),
        ),
        clock: t.w.clock.clone(),
        operator_email: config.operator_email.clone(),
        window_days: 7,
    };
    let report = dsar_deadlines::run(&app).await.unwrap();
    assert_eq!(report.requests, 2, "{report:?}");
    assert_eq!(report.digests_sent, 2);
    let digest = last_email(&t, &owner_email, "Privacy requests due");
    assert!(digest.body.contains(&early));
    assert!(!digest.body.contains(&later), "not due within 7 days");
    assert!(
        !digest.body.contains(&account),
        "the platform's own go to the operator"
    );
    assert!(!digest.body.contains(&subject), "no subject data");
    let op = last_email(&t, &config.operator_email, "Privacy requests due");
    assert!(op.body.contains(&account));
    let ops: Vec<String> = meter.take().into_iter().map(|r| r.operation).collect();
    assert!(!ops.iter().any(|o| o == "Scan"), "never a scan: {ops:?}");
    assert_eq!(
        ops.iter().filter(|o| *o == "Query").count(),
        4,
        "one Query per due shard: {ops:?}"
    );

    // Same day again: nothing sent twice.
    let again = dsar_deadlines::run(&app).await.unwrap();
    assert_eq!((again.digests_sent, again.digests_already_sent), (0, 2));
    // Days later the early one is overdue.
    t.w.clock.advance(time::Duration::days(6));
    run_and_check_overdue(&app, &t, &owner_email, &early).await;
    // The runs log their digests (ids and counts), never the subject or the owner.
    assert_logs_hold_without(
        &logs,
        &["deadline digest sent", "deadline check done"],
        &[&subject, &owner_email],
    );
}

async fn run_and_check_overdue(app: &dsar_deadlines::App<SesMailer>, t: &T, owner: &str, id: &str) {
    let r = dsar_deadlines::run(app).await.unwrap();
    assert!(r.overdue >= 1, "{r:?}");
    let d = last_email(t, owner, "overdue");
    assert!(d.body.contains(id) && d.body.contains("OVERDUE"));
    let (_, admin) = user(t, &t.w.tenant, Role::Admin, None).await;
    let (_, q) = controller(t, "GET", "/v1/privacy/requests", None, &admin).await;
    let first = &q["requests"][0];
    assert_eq!(
        (first["request_id"].as_str(), first["overdue"].as_bool()),
        (Some(id), Some(true)),
        "overdue first"
    );
}

// ---------------------------------------------------------------- one-click unsubscribe

#[tokio::test]
async fn one_click_unsubscribe_changes_state_on_post_only() {
    let t = setup().await;
    let email = new_email();
    let lead = seed_lead(&t, &t.w.tenant, &email).await;
    let bidx = t.w.key.email(&Email::parse(&email).unwrap());
    let token = UnsubscribeToken {
        purpose: UnsubscribePurpose::Consent,
        subject_bidx: bidx.clone(),
        scope: UnsubscribeScope::Tenant(t.w.tenant.clone()),
    }
    .sign(&t.w.key);
    let lead_key = shared_core::keys::lead(&t.w.tenant, &lead);
    let leads = t.config.tables.leads.clone();
    let (st, g) = call(
        &t,
        event(
            "GET",
            "/v1/privacy/unsubscribe",
            &[("t", &token)],
            None,
            None,
        ),
    )
    .await;
    assert_eq!((st, g["changed"].as_bool()), (200, Some(false)));
    let it = item(&t, &leads, &lead_key.pk, &lead_key.sk).await.unwrap();
    assert!(
        !it.contains_key("marketing_opt_out"),
        "a GET (mail scanner prefetch) changes nothing"
    );
    let mut e = fixture("auth/login.json");
    e["rawPath"] = json!("/v1/privacy/unsubscribe");
    e["requestContext"]["http"]["path"] = json!("/v1/privacy/unsubscribe");
    e["rawQueryString"] = json!(format!("t={token}"));
    e["queryStringParameters"] = json!({ "t": token });
    e["headers"]["content-type"] = json!("application/x-www-form-urlencoded");
    e["body"] = json!("List-Unsubscribe=One-Click");
    let (st, p) = call(&t, request(&e)).await;
    assert_eq!((st, p["changed"].as_bool()), (200, Some(true)), "{p}");
    let it = item(&t, &leads, &lead_key.pk, &lead_key.sk).await.unwrap();
    assert_eq!(
        it.get("marketing_opt_out"),
        Some(&AttributeValue::Bool(true))
    );
    assert_eq!(
        s(&it, "marketing_opt_out_source"),
        Some("one-click email link")
    );
    let proof = item(
        &t,
        &t.config.tables.privacy,
        &format!("TENANT#{}#OPTOUT", t.w.tenant),
        &format!("OPTOUT#{bidx}"),
    )
    .await
    .unwrap();
    assert!(s(&proof, "withdrawn_at").is_some());
    // Platform scope: the account user's flag.
    let user_email = new_email();
    let (uid, _) = user(&t, &t.w.tenant, Role::Member, Some(&user_email)).await;
    let ubidx = t.w.key.email(&Email::parse(&user_email).unwrap());
    put(
        &t,
        &t.config.tables.tenants,
        login_item(&ubidx, &t.w.tenant, &uid),
    )
    .await;
    let ptoken = UnsubscribeToken {
        purpose: UnsubscribePurpose::Marketing,
        subject_bidx: ubidx,
        scope: UnsubscribeScope::Platform,
    }
    .sign(&t.w.key);
    let (st, _) = call(
        &t,
        event(
            "POST",
            "/v1/privacy/unsubscribe",
            &[("t", &ptoken)],
            None,
            None,
        ),
    )
    .await;
    assert_eq!(st, 200);
    let uk = shared_core::keys::user(&t.w.tenant, &uid);
    let u = item(&t, &t.config.tables.tenants, &uk.pk, &uk.sk)
        .await
        .unwrap();
    assert_eq!(
        u.get("marketing_opt_out"),
        Some(&AttributeValue::Bool(true))
    );
    // A forged or altered token is refused.
    let (st, _) = call(
        &t,
        event(
            "POST",
            "/v1/privacy/unsubscribe",
            &[("t", &format!("{token}x"))],
            None,
            None,
        ),
    )
    .await;
    assert_eq!(st, 400);
    assert_inventory_covers(&t).await;
}

/// A one-click withdrawal from a tenant's email reaches the consent records themselves: each
/// keeps what was given and gains the withdrawal's time and source, as after a withdrawal
/// request; a second click changes nothing.
#[tokio::test]
async fn one_click_withdrawal_marks_the_consent_records_of_the_submissions() {
    let t = setup().await;
    let email = new_email();
    let mut e = json_submission(&json!({
        "email": email, "name": "Ana", "message": "hello", "consent_marketing": true
    }));
    e["rawPath"] = json!("/v1/forms/demo-contact/submissions");
    e["requestContext"]["http"]["path"] = json!("/v1/forms/demo-contact/submissions");
    e["pathParameters"]["formId"] = json!("demo-contact");
    let resp = lead_intake::handle(&t.w.intake(None), request(&e)).await;
    assert_eq!(resp.status(), 201, "{:?}", response_json(&resp));
    let token = UnsubscribeToken {
        purpose: UnsubscribePurpose::Consent,
        subject_bidx: t.w.key.email(&Email::parse(&email).unwrap()),
        scope: UnsubscribeScope::Tenant(t.w.tenant.clone()),
    }
    .sign(&t.w.key);
    let click = || {
        event(
            "POST",
            "/v1/privacy/unsubscribe",
            &[("t", &token)],
            None,
            None,
        )
    };
    let (st, p) = call(&t, click()).await;
    assert_eq!((st, p["changed"].as_bool()), (200, Some(true)), "{p}");
    let consent = |sub: &Item| sub["consents"].as_l().unwrap()[0].as_m().unwrap().clone();
    let subs = t.w.items_with_sk_prefix("LeadsTable", "SUB#").await;
    assert_eq!(subs.len(), 1);
    let c = consent(&subs[0]);
    assert_eq!(
        c["granted"],
        AttributeValue::Bool(true),
        "what was given is kept"
    );
    let first = c["withdrawn_at"].as_s().unwrap().clone();
    assert_eq!(
        c["withdrawal_source"].as_s().unwrap(),
        "one-click email link"
    );
    // A second click (or the mail client's retry) keeps the first withdrawal's time.
    let (st, _) = call(&t, click()).await;
    assert_eq!(st, 200);
    let subs = t.w.items_with_sk_prefix("LeadsTable", "SUB#").await;
    assert_eq!(consent(&subs[0])["withdrawn_at"].as_s().unwrap(), &first);
    assert_inventory_covers(&t).await;
}

// ---------------------------------------------------------------- cost

/// Seeds `n` leads of other people in `tenant` with BatchWriteItem.
async fn seed_others(t: &T, tenant: &TenantId, n: usize) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let items: Vec<Item> = (0..n)
        .map(|_| {
            let email = Email::parse(&new_email()).unwrap();
            let bidx = t.w.key.email(&email);
            let id = t.w.key.lead_id(tenant, &bidx);
            let contact = ContactDetails {
                email: Some(email),
                ..ContactDetails::default()
            };
            new_lead_item(
                tenant,
                &id,
                &contact,
                (Some(&bidx), None),
                "new",
                t.w.clock.now(),
            )
        })
        .collect();
    for chunk in items.chunks(25) {
        let writes = chunk
            .iter()
            .map(|it| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(it.clone()))
                            .build()
                            .unwrap(),
                    )
                    .build()
            })
            .collect();
        t.w.clients
            .dynamo
            .batch_write_item()
            .request_items(&t.config.tables.leads, writes)
            .send()
            .await
            .expect("batch write");
    }
}

/// The DynamoDB operations of filing and verifying one request naming no tenant, for a subject
/// held by two tenants, in a leads table of `others` other people.
async fn routing_operations(others: usize) -> (Vec<String>, Vec<String>) {
    let mut t = setup().await;
    let b = new_tenant(&t, "tb").await;
    seed_others(&t, &t.w.tenant.clone(), others).await;
    let email = new_email();
    seed_lead(&t, &t.w.tenant.clone(), &email).await;
    seed_lead(&t, &b, &email).await;
    let meter = t.w.meter();
    t.app.store = DsarStore::new(
        meter.instrument(&t.w.clients.dynamo),
        t.config.tables.clone(),
    );
    let id = file_ok(&t, json!({"type": "access", "email": email})).await;
    let filing: Vec<String> = meter.take().into_iter().map(|r| r.operation).collect();
    let code = code_for(&t, &email, &id);
    let (st, _) = verify(&t, &id, &code).await;
    assert_eq!(st, 200);
    let verifying: Vec<String> = meter.take().into_iter().map(|r| r.operation).collect();
    (filing, verifying)
}

#[tokio::test]
async fn routing_cost_follows_the_subject_not_the_table() {
    let (file_small, verify_small) = routing_operations(10).await;
    let (file_large, verify_large) = routing_operations(400).await;
    eprintln!("filing: {file_small:?}\nverifying (2 tenants): {verify_small:?}");
    assert_eq!(
        file_small, file_large,
        "filing reads nothing about the subject"
    );
    assert_eq!(
        verify_small, verify_large,
        "routing cost does not grow with the table"
    );
    for ops in [&file_small, &verify_small] {
        assert!(!ops.iter().any(|o| o == "Scan"), "never a scan: {ops:?}");
    }
    // Filing: two rate-limit windows and the request. No read of anything about the subject.
    assert_eq!(file_small, ["UpdateItem", "UpdateItem", "PutItem"]);
    // Verifying: the request, a try spent, one Query of each blind-index index (the leads'
    // and the quarantine's), one part per tenant, the request marked verified and a check
    // whether it closes.
    assert_eq!(verify_small.iter().filter(|o| *o == "Query").count(), 2);
    assert_eq!(verify_small.iter().filter(|o| *o == "PutItem").count(), 2);
}

/// GDPR Art. 7(3) and 21(3): a consent withdrawal, and an objection to direct marketing, take
/// effect once the subject is verified, with no decision of the tenant, which cannot deny or
/// extend them; an objection to legitimate-interest processing, and any other request, waits
/// for the controller.
#[tokio::test]
async fn withdrawal_and_marketing_objection_apply_at_verification_without_the_controller() {
    let t = setup().await;
    let tenant = t.w.tenant.clone();
    let (_, admin) = user(&t, &tenant, Role::Admin, None).await;
    let form = t.w.form.form_id.as_str().to_string();
    let cases = [
        (json!({"type": "consent_withdrawal"}), true),
        (
            json!({"type": "objection", "details": {"processing": "marketing"}}),
            true,
        ),
        (json!({"type": "objection"}), true),
        (
            json!({"type": "objection", "details": {"processing": "legitimate_interest"}}),
            false,
        ),
        (json!({"type": "access"}), false),
    ];
    for (filing, at_once) in cases {
        let email = new_email();
        seed_lead(&t, &tenant, &email).await;
        let mut body = filing.clone();
        body["email"] = json!(email);
        body["form_id"] = json!(form);
        let before = t.jobs.jobs().len();
        let id = file_and_verify(&t, body).await;
        let jobs = t.jobs.jobs();
        let path = format!("/v1/privacy/requests/{id}");
        let (sg, got) = controller(&t, "GET", &path, None, &admin).await;
        assert_eq!(sg, 200, "{got}");
        if at_once {
            assert_eq!(
                jobs.len(),
                before + 1,
                "{filing}: applied without the controller"
            );
            let job = jobs.last().unwrap();
            assert_eq!(job.request_id, id);
            assert!(
                matches!(
                    job.kind,
                    JobKind::ConsentWithdrawal
                        | JobKind::Objection {
                            marketing_only: true
                        }
                ),
                "{filing}"
            );
            assert_eq!(got["status"], "approved", "{filing}: {got}");
            let events: Vec<&str> = got["history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["event"].as_str().unwrap())
                .collect();
            assert!(events.contains(&"applied_at_once"), "{filing}: {events:?}");
            // Neither refused nor extended by the tenant.
            let (sd, _) = controller(
                &t,
                "POST",
                &format!("{path}/deny"),
                Some(json!({"reason": "We still want to email you."})),
                &admin,
            )
            .await;
            assert_eq!(sd, 409, "{filing}: a withdrawal cannot be denied");
            let (se, _) = controller(
                &t,
                "POST",
                &format!("{path}/extend"),
                Some(json!({"reason": "Busy."})),
                &admin,
            )
            .await;
            assert_eq!(se, 409, "{filing}: nor extended");
        } else {
            assert_eq!(jobs.len(), before, "{filing}: waits for the controller");
            assert_eq!(got["status"], "awaiting_controller", "{filing}");
        }
    }
}

// ---------------------------------------------------------------- bodies that are not UTF-8

/// Every route, public or a controller's, answers a body that is not UTF-8 (base64-encoded by
/// API Gateway) with a 4xx JSON error, whatever the content type, and stores nothing. The
/// request ids are real (a filed request), so the routes reach their body.
#[tokio::test]
async fn bodies_that_are_not_utf8_are_4xx_on_every_route_and_store_nothing() {
    let t = setup().await;
    let tenant = t.w.tenant.clone();
    let (_, owner) = user(&t, &tenant, Role::Owner, None).await;
    let subject = new_email();
    seed_lead(&t, &tenant, &subject).await;
    let id = file_ok(&t, json!({"type": "access", "email": subject})).await;
    let before = t.w.snapshot().await;
    let mut calls = 0;
    for route in dsar::ROUTES.iter().filter(|r| r.method != "GET") {
        let path = concrete_path(route.path, &[("requestId", &id)]);
        for bytes in NOT_UTF8_BODIES {
            for ct in BODY_CONTENT_TYPES {
                let e = http_event(route.method, &path, Some(&owner));
                let resp = dsar::handle(&t.app, with_base64_body(e, bytes, ct)).await;
                assert_json_client_error(&resp, &format!("{} {path} {ct} {bytes:?}", route.method));
                calls += 1;
            }
        }
    }
    assert!(calls > 0);
    assert_eq!(t.w.snapshot().await, before, "nothing stored");
}

/// A controller's session opened before a change of their credentials (a reset, a role change)
/// cannot decide requests, even if ending the sessions missed it: writes compare epochs.
#[tokio::test]
async fn a_session_behind_the_users_credential_epoch_cannot_decide() {
    let t = setup().await;
    let tenant = new_tenant(&t, "epoch").await;
    let (admin_id, admin) = user(&t, &tenant, Role::Admin, None).await;
    let path = "/v1/privacy/requests/dsr-unknown/approve";
    let (before, body) = controller(&t, "POST", path, None, &admin).await;
    assert!(before != 401 && before < 500, "{before} {body}");
    accounts(&t.w, &t.config)
        .bump_epoch(&tenant, &admin_id)
        .await
        .unwrap();
    let (after, body) = controller(&t, "POST", path, None, &admin).await;
    assert_eq!(
        (after, body["error"]["code"].as_str()),
        (401, Some("session_ended")),
        "{body}"
    );
}

/// A phone-only lead (a form without an email) in `tenant`, at its phone's derived id.
async fn seed_phone_lead(t: &T, tenant: &TenantId, phone: &str) -> LeadId {
    let phone = shared_core::domain::Phone::parse(phone).unwrap();
    let bidx = t.w.key.phone(&phone);
    let id = t.w.key.lead_id(tenant, &bidx);
    let contact = ContactDetails {
        phone: Some(phone),
        name: Some("Pat Phone".into()),
        ..ContactDetails::default()
    };
    let it = new_lead_item(
        tenant,
        &id,
        &contact,
        (None, Some(&bidx)),
        "new",
        t.w.clock.now(),
    );
    put(t, &t.config.tables.leads, it).await;
    id
}

/// Issue 12: a person the tenant knows by phone only is reachable. The tenant files on their
/// behalf by phone with an attested identity; the request names the phone's blind index, shows
/// the tenant exactly its own lead of that phone, and answers the filing user.
#[tokio::test]
async fn a_tenant_files_by_phone_for_a_person_known_by_phone_only() {
    let t = setup().await;
    let staff = new_email();
    let (_, admin) = user(&t, &t.w.tenant, Role::Admin, Some(&staff)).await;
    let phone = "+40 722 000 555";
    let lead = seed_phone_lead(&t, &t.w.tenant, phone).await;
    let other_tenant = new_tenant(&t, "other").await;
    seed_phone_lead(&t, &other_tenant, phone).await;
    seed_phone_lead(&t, &t.w.tenant, "+40722000556").await;
    let path = "/v1/privacy/requests/on-behalf";
    let (st, b) = controller(
        &t,
        "POST",
        path,
        Some(json!({"type": "erasure", "phone": phone})),
        &admin,
    )
    .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (400, Some("attestation_required")),
        "{b}"
    );
    let (st, b) = controller(&t, "POST", path,
        Some(json!({"type": "erasure", "phone": phone, "email": new_email(), "identity_attested": "in_person"})), &admin).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (400, Some("invalid_subject")),
        "{b}"
    );
    let (st, b) = controller(
        &t,
        "POST",
        path,
        Some(json!({"type": "erasure", "phone": "12", "identity_attested": "in_person"})),
        &admin,
    )
    .await;
    assert_eq!(st, 400, "{b}");
    // "Present but null" is not "absent": the document defines both as strings.
    let (st, b) = controller(
        &t,
        "POST",
        path,
        Some(json!({"type": "access", "email": new_email(), "phone": null})),
        &admin,
    )
    .await;
    assert_eq!(st, 400, "a null phone is refused: {b}");

    let (st, b) = controller(&t, "POST", path,
        Some(json!({"type": "erasure", "phone": phone, "identity_attested": "existing_relationship"})), &admin).await;
    assert_eq!((st, b["status"].as_str()), (201, Some("verified")), "{b}");
    let id = b["request_id"].as_str().unwrap().to_string();
    let r = item(
        &t,
        &t.config.tables.privacy,
        &format!("DSAR#{id}"),
        "REQUEST",
    )
    .await
    .unwrap();
    let phone_bidx =
        t.w.key
            .phone(&shared_core::domain::Phone::parse(phone).unwrap());
    assert_eq!(
        r.get("subject_phone_bidx").and_then(|v| v.as_s().ok()),
        Some(&phone_bidx)
    );
    assert_eq!(
        r.get("email").and_then(|v| v.as_s().ok()),
        Some(&staff),
        "answers go to the filing user"
    );
    assert!(!format!("{r:?}").contains("722"), "no phone in clear");
    let (st, got) = controller(
        &t,
        "GET",
        &format!("/v1/privacy/requests/{id}"),
        None,
        &admin,
    )
    .await;
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["subject_identified_by"], "phone");
    assert_eq!(
        (got["subject_email"].clone(), got["answers_to"].clone()),
        (Value::Null, json!(staff))
    );
    assert_eq!(
        got["lead_ids"],
        json!([lead.as_str()]),
        "this tenant's lead of that phone only"
    );
    assert!(last_email(&t, &staff, "").body.contains(&id));
    let (st, b) = controller(
        &t,
        "POST",
        &format!("/v1/privacy/requests/{id}/approve"),
        None,
        &admin,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert!(t.jobs.jobs().iter().any(|j| j.request_id == id));
    assert_inventory_covers(&t).await;
}
