//! The leads-api function against the emulator (DynamoDB, S3, SSM), through real API Gateway v2
//! events and real access tokens: forms, leads, notes and the pipeline of issue 4, tenant
//! isolation (404, never 403), the role matrix, pagination over a changing list, optimistic
//! concurrency, restriction, deletion with S3 objects, the data inventory, the logs, and what a
//! page of leads costs in DynamoDB requests and items read.
//!
//! This file is the harness (the app as `main.rs` builds it, team members with live sessions,
//! API Gateway events, seeded leads); the tests are in `tests/leads_api/`.
//!
//! Users and sessions are written straight to the tables and tokens minted with the auth
//! function's signing key (no password hashing); leads are seeded in intake's item shape, or
//! sent through lead intake when a test needs submissions.

#[path = "leads_api/access.rs"]
mod access;
#[path = "leads_api/api_keys.rs"]
mod api_keys;
#[path = "leads_api/bodies.rs"]
mod bodies;
#[path = "leads_api/cost.rs"]
mod cost;
#[path = "leads_api/deleting.rs"]
mod deleting;
#[path = "leads_api/editing.rs"]
mod editing;
#[path = "leads_api/forms.rs"]
mod forms;
#[path = "leads_api/listing.rs"]
mod listing;
#[path = "leads_api/notes_pipeline.rs"]
mod notes_pipeline;
#[path = "leads_api/privacy.rs"]
mod privacy;
#[path = "leads_api/quarantine.rs"]
mod quarantine;
#[path = "leads_api/quotas.rs"]
mod quotas;
#[path = "leads_api/races.rs"]
mod races;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use integration_tests::*;
use serde_json::{json, Value};
use shared_accounts::auth::permissions::Role;
use shared_accounts::auth::tokens;
use shared_accounts::dynamo::{session_item, tenant_item, user_item};
use shared_accounts::{Mfa, Session, Tenant, User};
use shared_core::clock::{rfc3339, Clock, UlidGenerator};
use shared_core::config::Env;
use shared_core::domain::{
    ContactDetails, Email, LeadId, SessionId, TenantId, TenantStatus, UserId,
};
use shared_core::dynamo::{s as av_s, Item};
use shared_leads::dynamo::{new_lead_item, LeadsStore};
use time::{Duration, OffsetDateTime};

type AuthApp = auth::App<shared_mail::SesMailer>;

struct T {
    w: World,
    app: leads_api::App,
    auth: AuthApp,
}

async fn setup() -> T {
    let w = World::new().await.expect("test world");
    let auth = w.auth_app().await.expect("auth app (and the signing keys)");
    let app = leads_app(&w, w.clients.dynamo.clone()).await;
    T { w, app, auth }
}

/// The function's app as `main.rs` builds it, its configuration exactly as the template gives
/// it, over `dynamo` (the world's client, or a metered one) and the world's clock.
async fn leads_app(w: &World, dynamo: aws_sdk_dynamodb::Client) -> leads_api::App {
    let env = infra::local::local_function_env(&w.template, "leads-api", emulator_endpoint())
        .expect("leads-api env");
    let config = leads_api::config::Config::from_env(&Env::from_pairs(env)).expect("config");
    let verifier = w.token_verifier("leads-api").await.expect("public keys");
    leads_api::App {
        store: LeadsStore::new(dynamo.clone(), config.tables.clone()),
        s3: w.clients.s3.clone(),
        attachments_bucket: config.attachments_bucket.clone(),
        keys: w.key.clone(),
        verifier,
        clock: w.clock.clone(),
        ids: Arc::new(UlidGenerator),
        api_base_url: config.api_base_url.clone(),
        intake: leads_api::release_intake(
            &config,
            dynamo,
            w.clock.clone(),
            Arc::new(UlidGenerator),
            w.key.clone(),
        ),
    }
}

// ---------------------------------------------------------------- people and tokens

/// A team member with a live session and its access token.
#[derive(Clone)]
struct Member {
    user: User,
    token: String,
}

impl Member {
    fn id(&self) -> String {
        self.user.user_id.to_string()
    }
}

async fn put(t: &T, table: &str, item: Item) {
    t.w.clients
        .dynamo
        .put_item()
        .table_name(t.w.table(table))
        .set_item(Some(item))
        .send()
        .await
        .expect("put item");
}

async fn member(t: &T, tenant: &TenantId, role: Role, who: &str) -> Member {
    let now = t.w.clock.now();
    let user = User {
        user_id: UserId::parse(&t.auth.new_id("us")).unwrap(),
        tenant_id: tenant.clone(),
        email: Email::parse(&format!("{who}.{}@example.com", t.w.stage)).unwrap(),
        name: who.to_string(),
        phone: None,
        role,
        // Never used: these members never log in with a password.
        password_hash: "unused".into(),
        email_verified: true,
        created_at: now,
        mfa: Mfa::default(),
        last_login: None,
        policy: None,
    };
    put(t, "TenantsTable", user_item(&user)).await;
    let token = mint(t, &user).await;
    Member { user, token }
}

/// A fresh live session of `user` and an access token for it.
async fn mint(t: &T, user: &User) -> String {
    let now = t.w.clock.now();
    let sid = SessionId::parse(&t.auth.new_id("se")).unwrap();
    let session = Session {
        session_id: sid.clone(),
        user_id: user.user_id.clone(),
        tenant_id: user.tenant_id.clone(),
        refresh_hash: tokens::hash_secret(&tokens::new_secret()),
        previous_hashes: vec![],
        created_at: now,
        last_used_at: now,
        idle_expires_at: now + Duration::days(7),
        absolute_expires_at: now + Duration::days(30),
        revoked_at: None,
        ip: None,
        user_agent: None,
    };
    // Under the user's current credential epoch, as a login opens it.
    let epoch = t
        .auth
        .store
        .user_with_epoch(&user.tenant_id, &user.user_id)
        .await
        .unwrap()
        .map_or(0, |(_, e)| e);
    let mut item = session_item(&session);
    item.insert("cred_epoch".into(), shared_core::dynamo::n(epoch));
    put(t, "TenantsTable", item).await;
    t.auth.access_token(user, &sid, epoch, now)
}

/// A new active tenant and its owner.
async fn workspace(t: &T, who: &str) -> (TenantId, Member) {
    let tenant = TenantId::parse(&t.auth.new_id("tn")).unwrap();
    let owner = member(t, &tenant, Role::Owner, who).await;
    let record = Tenant {
        tenant_id: tenant.clone(),
        business_name: format!("{who} Ltd"),
        status: TenantStatus::Active,
        owner_user_id: owner.user.user_id.clone(),
        created_at: t.w.clock.now(),
        closed_at: None,
        erase_after: None,
    };
    put(t, "TenantsTable", tenant_item(&record)).await;
    (tenant, owner)
}

// ---------------------------------------------------------------- calling the function

struct Reply {
    status: u16,
    body: Value,
    etag: Option<String>,
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
    fn items(&self) -> Vec<Value> {
        self.body["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items in {}", self.body))
            .clone()
    }
    fn ids(&self) -> Vec<String> {
        self.items()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    }
    fn cursor(&self) -> Option<String> {
        self.body["next_cursor"].as_str().map(str::to_string)
    }
}

/// An API Gateway v2 event (from `events/leads-api/`) for `method path?query`.
fn event(
    method: &str,
    path: &str,
    query: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> Value {
    let mut e = fixture("leads-api/get-lead.json");
    e["rawPath"] = json!(path);
    e["rawQueryString"] = json!(query);
    let params: BTreeMap<String, String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    e["queryStringParameters"] = json!(params);
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["http"]["path"] = json!(path);
    e["routeKey"] = json!(format!("{method} {path}"));
    e["pathParameters"] = json!({});
    let headers = e["headers"].as_object_mut().unwrap();
    headers.remove("authorization");
    if let Some(b) = body {
        headers.insert("content-type".into(), json!("application/json"));
        e["body"] = json!(b.to_string());
    }
    if let Some(tok) = token {
        e["headers"]["authorization"] = json!(format!("Bearer {tok}"));
    }
    e
}

async fn send(t: &T, e: &Value) -> Reply {
    let resp = leads_api::handle(&t.app, request(e)).await;
    Reply {
        status: resp.status().as_u16(),
        body: response_json(&resp),
        etag: header(&resp, "etag").map(str::to_string),
    }
}

async fn call(t: &T, who: &Member, method: &str, path: &str, body: Option<Value>) -> Reply {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    send(
        t,
        &event(method, path, query, body.as_ref(), Some(&who.token)),
    )
    .await
}

async fn get(t: &T, who: &Member, path: &str) -> Reply {
    call(t, who, "GET", path, None).await
}

fn contact_form() -> Value {
    json!({
        "name": "Contact us",
        "allowed_origins": [WEB_ORIGIN],
        "redirect_url": format!("{WEB_ORIGIN}/thanks.html"),
    })
}

async fn create_form(t: &T, owner: &Member, body: Value) -> String {
    let r = call(t, owner, "POST", "/v1/forms", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.str("id")
}

/// A submission through lead intake to `form`, from the demo page's origin.
async fn submit(t: &T, form: &str, body: Value) -> Value {
    let intake = t.w.intake(None);
    let mut e = json_submission(&body);
    e["rawPath"] = json!(format!("/v1/forms/{form}/submissions"));
    e["pathParameters"]["formId"] = json!(form);
    let resp = lead_intake::handle(&intake, request(&e)).await;
    let b = response_json(&resp);
    assert_eq!(resp.status(), 201, "{b}");
    b
}

// ---------------------------------------------------------------- seeding leads

struct Seed<'a> {
    stage: &'a str,
    form: &'a str,
    /// The newest lead's creation time; each next one is `step` older.
    newest: OffsetDateTime,
    step: Duration,
    label: &'a str,
}

/// `n` leads in intake's item shape, written with BatchWriteItem. Returns their ids, newest
/// first.
async fn seed_leads(t: &T, tenant: &TenantId, n: usize, seed: Seed<'_>) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    let mut requests = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("ld-{}-{i:05}", seed.label);
        let lead_id = LeadId::parse(&id).unwrap();
        let email = Email::parse(&format!("{}.{i}@example.com", seed.label)).unwrap();
        let bidx = t.w.key.email(&email);
        let contact = ContactDetails {
            email: Some(email),
            phone: None,
            name: Some(format!("Person {i}")),
            company: None,
        };
        let created = seed.newest - seed.step * (i as i32);
        let mut it = new_lead_item(
            tenant,
            &lead_id,
            &contact,
            (Some(&bidx), None),
            seed.stage,
            created,
        );
        it.insert("source_form_id".into(), av_s(seed.form));
        it.insert("last_submission_at".into(), av_s(rfc3339(created)));
        it.insert("submission_count".into(), shared_core::dynamo::n(1));
        requests.push(
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(it)).build().unwrap())
                .build(),
        );
        ids.push(id);
    }
    batch_write(t, requests).await;
    ids
}

async fn batch_write(t: &T, requests: Vec<WriteRequest>) {
    let table = t.w.table("LeadsTable");
    for chunk in requests.chunks(25) {
        let mut pending = chunk.to_vec();
        while !pending.is_empty() {
            let out =
                t.w.clients
                    .dynamo
                    .batch_write_item()
                    .request_items(&table, pending)
                    .send()
                    .await
                    .expect("BatchWriteItem");
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&table))
                .unwrap_or_default();
        }
    }
}

fn one_seed(label: &str) -> Seed<'_> {
    Seed {
        stage: "new",
        form: "fm-seed",
        newest: OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - Duration::days(1),
        step: Duration::minutes(1),
        label,
    }
}
